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
