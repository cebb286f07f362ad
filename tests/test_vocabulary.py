import os
import subprocess
import sys

import pytest
import sentencepiece as spm

from albert_keras import special_tokens as special
from albert_keras import vocabulary
from data_fixtures import generated_documents, tiny_spm_model, write_corpus


def test_special_pieces_and_vocab_file():
    model_path = tiny_spm_model()
    processor = spm.SentencePieceProcessor(model_file=model_path)
    assert [processor.id_to_piece(i) for i in range(5)] == list(special.SPECIAL_PIECES)
    assert (special.PAD_ID, special.UNK_ID, special.CLS_ID, special.SEP_ID,
            special.MASK_ID, special.FIRST_ORDINARY_ID) == (0, 1, 2, 3, 4, 5)
    vocab = open(model_path[: -len(".model")] + ".vocab", encoding="utf-8").read().splitlines()
    assert [line.split("\t")[0] for line in vocab[:5]] == list(special.SPECIAL_PIECES)
    # Control symbols never come out of raw text.
    assert special.CLS_ID not in processor.encode("[CLS] [SEP] [MASK]")
    proto = vocabulary.read_model_proto(model_path)
    assert vocabulary.check_special_pieces(proto).get_piece_size() == processor.get_piece_size()


def test_bad_models_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="junk is not a SentencePiece model"):
        vocabulary.check_special_pieces(b"not a model proto", source="junk")
    with pytest.raises(FileNotFoundError, match="missing.model"):
        vocabulary.read_model_proto(str(tmp_path / "missing.model"))


def test_build_vocab_cli(tmp_path, capsys):
    from training import build_vocab

    corpus = write_corpus(str(tmp_path / "c.txt"), generated_documents(60))
    prefix = str(tmp_path / "out" / "albert")
    assert build_vocab.main(["--input", corpus, "--vocab_size", "120",
                             "--model_prefix", prefix]) == 0
    processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
    assert [processor.id_to_piece(i) for i in range(5)] == list(special.SPECIAL_PIECES)
    assert sorted(os.listdir(tmp_path / "out")) == ["albert.model", "albert.vocab"]
    assert build_vocab.main(["--input", str(tmp_path / "none*.txt"), "--vocab_size", "120",
                             "--model_prefix", prefix]) == 2
    assert "no input files match" in capsys.readouterr().err


def test_build_vocab_for_chinese(tmp_path, capsys):
    """Paragraphs split into sentences, every character kept or written as bytes, long
    lines an error naming them (or counted), the <unk> share printed, the sampling the
    same under the same seed."""
    from training import build_vocab
    from data_fixtures import sib200_sentences

    paragraphs = ["".join(sib200_sentences("zho_Hans")[i:i + 3]) for i in range(0, 600, 3)]
    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
    base = ["--input", str(corpus), "--vocab_size", "2500", "--input_format", "paragraphs"]

    def build(name, *flags):
        prefix = str(tmp_path / name)
        assert build_vocab.main(base + ["--model_prefix", prefix, *flags]) == 0
        output = capsys.readouterr()
        return open(prefix + ".model", "rb").read(), output

    covered, output = build("all", "--character_coverage", "1.0")
    assert "<unk>: 0.000% of the pieces" in output.out
    default, output = build("default")
    assert "<unk>:" in output.out and "<unk>: 0.000% of the pieces" not in output.out
    rare = sorted(set("".join(paragraphs)), key="".join(paragraphs).count)[0]
    processor = spm.SentencePieceProcessor(model_proto=covered)
    assert processor.encode(rare)[-1] != 1  # kept with coverage 1.0
    bytes_model, _ = build("bytes", "--byte_fallback")
    processor = spm.SentencePieceProcessor(model_proto=bytes_model)
    assert [processor.id_to_piece(i) for i in processor.encode("龘")][-3:] == [
        "<0xE9>", "<0xBE>", "<0x98>"]
    one, _ = build("one", "--max_sentences", "300", "--seed", "1")
    again, _ = build("again", "--max_sentences", "300", "--seed", "1")
    other, _ = build("other", "--max_sentences", "300", "--seed", "2")
    assert one == again and one != other

    long_corpus = tmp_path / "long.txt"
    long_corpus.write_text("短句。\n" + "长" * 2000 + "\n", encoding="utf-8")
    flags = ["--input", str(long_corpus), "--vocab_size", "20", "--model_prefix",
             str(tmp_path / "long")]
    assert build_vocab.main(flags) == 2
    assert f"{long_corpus}:2: a line of 6000 bytes" in capsys.readouterr().err
    assert build_vocab.main(flags + ["--long_lines", "skip"]) == 0
    assert "1 of 2 lines (50.0%) were longer" in capsys.readouterr().err
    assert build_vocab.main(base + ["--model_prefix", str(tmp_path / "small"),
                                    "--vocab_size", "100", "--character_coverage", "1"]) == 2
    assert "Vocabulary size is smaller than required_chars" in capsys.readouterr().err


def test_vocabulary_and_data_code_import_no_tensorflow_text():
    script = (
        "import sys\n"
        "import albert_keras.special_tokens, albert_keras.vocabulary, albert_keras.data\n"
        "import albert_keras.data.instances\n"
        "found = sorted(m for m in sys.modules if m.startswith('tensorflow_text'))\n"
        "assert not found, found[:5]\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
