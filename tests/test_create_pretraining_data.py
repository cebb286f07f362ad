import filecmp
import os

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from albert_keras.data.records import describe_record
from albert_keras.special_tokens import CLS_ID, SEP_ID
from albert_keras.text_normalization import normalize_text
from data_fixtures import generated_documents, tiny_spm_model, write_corpus
from training import create_pretraining_data as cpd

BUNDLED = os.path.join(os.path.dirname(__file__), "..", "training", "corpus", "bundled_corpus.txt")


def _run(tmp_path, inputs, out="out", **flags):
    argv = ["--input", inputs, "--spm_model", tiny_spm_model(), "--output_dir",
            str(tmp_path / out), "--max_seq_length", "64", "--dupe_factor", "2",
            "--num_output_files", "3", "--seed", "7"]
    for name, value in flags.items():
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return cpd.run(cpd.parse_args(argv))


def _records(paths):
    return [describe_record(r.numpy()) for r in tf.data.TFRecordDataset(sorted(paths))]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    write_corpus(str(directory / "a.txt"), generated_documents(40, seed=2))
    write_corpus(str(directory / "b.txt"), generated_documents(30, seed=3))
    return directory


def test_schema_and_summary(tmp_path, corpus_dir, capsys):
    summary = _run(tmp_path, str(corpus_dir / "*.txt"))
    assert len(summary["files_written"]) == 3
    assert sorted(os.listdir(tmp_path / "out")) == [
        f"part-0000{k}-of-00003.tfrecord" for k in range(3)]
    assert summary["documents"] == 70 and summary["instances"] > 100
    records = _records(summary["files_written"])
    assert len(records) == summary["instances"]
    first = records[0]
    assert sorted(first) == sorted([
        "input_ids", "input_mask", "segment_ids", "token_boundary", "masked_lm_positions",
        "masked_lm_ids", "masked_lm_weights", "next_sentence_labels"])
    for record in records:
        for name in ("input_ids", "input_mask", "segment_ids", "token_boundary"):
            assert record[name].shape == (64,) and record[name].dtype == np.int64
        assert record["masked_lm_positions"].shape == (20,)
        assert record["masked_lm_weights"].dtype == np.float32
        assert not record["masked_lm_weights"].any()  # dynamic masking by default
        n = int(record["input_mask"].sum())
        ids, segments = record["input_ids"], record["segment_ids"]
        seps = np.flatnonzero(ids == SEP_ID)
        assert ids[0] == CLS_ID and len(seps) == 2 and seps[1] == n - 1
        assert (segments[: seps[0] + 1] == 0).all() and (segments[seps[0] + 1: n] == 1).all()
        assert record["token_boundary"][[0, seps[0], n - 1]].all()
        assert record["next_sentence_labels"].tolist() in ([0], [1])
    print(cpd.format_summary(summary))
    text = capsys.readouterr().out
    for word in ("documents", "sentences", "instances", "tokens", "swapped share",
                 "files written", "peak RSS"):
        assert word in text


def test_label_one_means_swapped(tmp_path):
    # Short documents in a long sequence: each chunk is a whole document, untruncated.
    documents = generated_documents(60, seed=5, min_sentences=1, max_sentences=3)
    write_corpus(str(tmp_path / "c.txt"), documents)
    summary = _run(tmp_path, str(tmp_path / "c.txt"), max_seq_length=128, short_seq_prob=0,
                   dupe_factor=3)
    assert summary["truncated_tokens"] == 0
    processor = spm.SentencePieceProcessor(model_file=tiny_spm_model())
    documents = {tuple(t for s in processor.encode([normalize_text(s) for s in d]) for t in s)
                 for d in documents}
    labels = []
    for record in _records(summary["files_written"]):
        ids = record["input_ids"][: int(record["input_mask"].sum())].tolist()
        sep = ids.index(SEP_ID)
        a, b = ids[1:sep], ids[sep + 1:-1]
        label = record["next_sentence_labels"][0]
        assert tuple(b + a if label else a + b) in documents  # never from another document
        assert tuple(a + b if label else b + a) not in documents or a == b
        labels.append(label)
    assert 0.3 < np.mean(labels) < 0.7


def test_same_bytes_whatever_num_workers(tmp_path, corpus_dir, capsys):
    one = _run(tmp_path, str(corpus_dir / "*.txt"), out="one", static_masking=True)
    # Progress: by default at most one line per 30 s, and always the last.
    assert capsys.readouterr().err.count("[create_pretraining_data] files 2/2") == 1
    two = _run(tmp_path, str(corpus_dir / "*.txt"), out="two", static_masking=True,
               num_workers=2, progress_seconds=0)
    progress = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in progress] == [
        "[create_pretraining_data] files 1/2", "[create_pretraining_data] files 2/2"]
    assert f"instances {two['instances']}, elapsed 0:00:" in progress[-1]
    assert progress[-1].endswith("remaining ~0:00:00")
    for a, b in zip(one["files_written"], two["files_written"]):
        assert filecmp.cmp(a, b, shallow=False)
    weights = np.array([r["masked_lm_weights"] for r in _records(one["files_written"])])
    assert (weights.sum(axis=1) > 0).all()  # static masks stored


@pytest.mark.skipif(not os.path.exists(BUNDLED), reason="bundled corpus not built yet")
def test_swapped_share_on_bundled_corpus(tmp_path):
    summary = _run(tmp_path, BUNDLED, max_seq_length=64, dupe_factor=1, num_output_files=2)
    assert summary["instances"] > 1000
    assert 0.45 <= summary["swapped_share"] <= 0.55


def test_bad_inputs(tmp_path, corpus_dir):
    good = str(corpus_dir / "a.txt")
    with pytest.raises(ValueError, match="no input files match"):
        _run(tmp_path, str(tmp_path / "missing*.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt: the input file is empty"):
        _run(tmp_path, str(tmp_path / "empty.txt"))
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    with pytest.raises(ValueError, match="blank.txt: no text"):
        _run(tmp_path, str(tmp_path / "blank.txt"))
    (tmp_path / "bad.txt").write_bytes(b"good line here.\nbad \xff\xfe line.\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: not valid UTF-8"):
        _run(tmp_path, str(tmp_path / "bad.txt"))
    with pytest.raises(ValueError, match="at least 8"):
        _run(tmp_path, good, max_seq_length=7)
    with pytest.raises(ValueError, match="max_predictions_per_seq"):
        _run(tmp_path, good, max_predictions_per_seq=64)
    plain = tmp_path / "plain"
    spm.SentencePieceTrainer.train(input=good, model_prefix=str(plain), vocab_size=60,
                                   hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(ValueError, match="plain.model lacks ALBERT's special pieces"):
        cpd.run(cpd.parse_args(["--input", good, "--spm_model", str(plain) + ".model",
                                "--output_dir", str(tmp_path / "out")]))
    # Nothing half-written by any of the failures above.
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
    # A failure in one file of several leaves no output either.
    with pytest.raises(ValueError, match="bad.txt:2"):
        _run(tmp_path, f"{good},{tmp_path / 'bad.txt'}")
    assert os.listdir(tmp_path / "out") == []
    assert cpd.main(["--input", str(tmp_path / "nope"), "--spm_model", "x",
                     "--output_dir", str(tmp_path / "o")]) == 2


def test_skip_invalid_utf8_long_lines_and_one_sentence_documents(tmp_path):
    long_line = " ".join(["unbelievable reconstruction"] * 40)  # far over 64 tokens
    (tmp_path / "c.txt").write_bytes(
        b"one sentence document.\n\nbad \xff line.\nthe city of the world.\n\n"
        + long_line.encode() + b"\n\nword\n")
    summary = _run(tmp_path, str(tmp_path / "c.txt"), on_invalid_utf8="skip")
    assert summary["invalid_utf8_lines_skipped"] == 1
    assert summary["first_invalid_line"].endswith("c.txt:3")
    assert summary["long_lines"] == 1 and summary["first_long_line"].endswith("c.txt:6")
    assert summary["skipped_chunks"] == 2  # "word" cannot be split, once per dupe
    assert summary["documents"] == 4
    for record in _records(summary["files_written"]):
        assert record["input_mask"].sum() <= 64
    with pytest.raises(FileExistsError, match="already holds TFRecords"):
        _run(tmp_path, str(tmp_path / "c.txt"), on_invalid_utf8="skip")


def test_wordpiece_vocabulary_on_chinese_text(tmp_path):
    """A vocab.txt: its own special ids in the records, and the reference BERT word rule
    (a "##" piece continues a word; each CJK character is a word of its own)."""
    from albert_keras.vocabulary import read_vocabulary
    from albert_keras.wordpiece import WordPieceTokenizer, is_cjk
    from data_fixtures import sib200_sentences, wordpiece_vocab_file

    sentences = sib200_sentences("zho_Hans")[:120] + sib200_sentences("eng_Latn")[:40]
    documents = [sentences[i:i + 4] for i in range(0, len(sentences), 4)]
    write_corpus(str(tmp_path / "zh.txt"), documents)
    vocabulary = read_vocabulary(wordpiece_vocab_file())
    summary = cpd.run(cpd.parse_args([
        "--input", str(tmp_path / "zh.txt"), "--spm_model", wordpiece_vocab_file(),
        "--output_dir", str(tmp_path / "out"), "--max_seq_length", "64", "--dupe_factor", "1",
        "--num_output_files", "1", "--seed", "3", "--static_masking"]))
    records = _records(summary["files_written"])
    assert len(records) == summary["instances"] > 20
    special = vocabulary.special
    expected_ids = set(t for s in sentences for t in WordPieceTokenizer(vocabulary).tokenize(s))
    starts = {True: 0, False: 0}
    for record in records:
        n = int(record["input_mask"].sum())
        weights = record["masked_lm_weights"] > 0
        positions = record["masked_lm_positions"][weights]
        ids = record["input_ids"][:n].copy()
        ids[positions] = record["masked_lm_ids"][weights]  # the text before masking
        boundary = record["token_boundary"][:n]
        assert ids[0] == special.cls == 101 and ids[n - 1] == special.sep == 102
        assert (ids == special.sep).sum() == 2 and not (ids == 2).any()  # not ALBERT's [CLS]
        for piece_id, start in zip(ids, boundary):
            piece = vocabulary.pieces[piece_id]
            if piece_id in (special.cls, special.sep):
                continue
            if piece.startswith("##"):
                assert start == 0, piece
            else:
                assert start == 1, piece
            if len(piece) == 1 and is_cjk(piece):
                starts[True] += 1
        masked = record["masked_lm_ids"][weights]
        assert len(masked) and set(masked.tolist()) <= expected_ids
        # The masks: [MASK] is the vocabulary's own (103), never a special position.
        assert not np.isin(ids[positions], [special.cls, special.sep, special.pad]).any()
    assert starts[True] > 100  # CJK characters, each a word
    assert sum(((r["input_ids"] == special.mask).sum() for r in records)) > 0

    # Dynamic masking in the training pipeline, with the vocabulary's ids: [MASK] is 103,
    # random replacements come from the ordinary ids (104 on), specials are never chosen.
    from albert_keras.data import pretraining_dataset

    dynamic = cpd.run(cpd.parse_args([
        "--input", str(tmp_path / "zh.txt"), "--spm_model", wordpiece_vocab_file(),
        "--output_dir", str(tmp_path / "dynamic"), "--max_seq_length", "64",
        "--dupe_factor", "1", "--num_output_files", "1", "--seed", "3"]))
    batch = next(iter(pretraining_dataset(
        dynamic["files_written"], 64, 64, 20, training=False, seed=1,
        vocab_size=vocabulary.size, special=special)))
    ids = batch["input_ids"].numpy()
    weights = batch["masked_lm_weights"].numpy() > 0
    chosen = np.take_along_axis(ids, batch["masked_lm_positions"].numpy(), 1)[weights]
    originals = batch["masked_lm_ids"].numpy()[weights]
    assert not np.isin(originals, [special.cls, special.sep, special.pad]).any()
    assert (chosen == special.mask).mean() > 0.7 and not (chosen == 4).any()
    replaced = chosen[(chosen != special.mask) & (chosen != originals)]
    assert len(replaced) and (replaced >= special.first_ordinary).all()


def test_paragraph_per_line_input_is_split_into_sentences(tmp_path):
    """--input_format paragraphs: each line a document of the sentences the rule finds,
    blank lines ignored."""
    from albert_keras.data.corpus import CorpusCounts, read_documents

    path = tmp_path / "zh.txt"
    path.write_text("北京是首都。上海是城市！对吗？\n\n只有一句\nFirst one. Second one.\n",
                    encoding="utf-8")
    counts = CorpusCounts()
    documents = list(read_documents(str(path), counts=counts, input_format="paragraphs"))
    assert documents == [[(1, "北京是首都。"), (1, "上海是城市！"), (1, "对吗？")],
                         [(3, "只有一句")], [(4, "First one."), (4, "Second one.")]]
    assert (counts.documents, counts.sentences) == (3, 6)
    sentences = list(read_documents(str(path)))
    assert len(sentences) == 2 and len(sentences[1]) == 2  # the reference format


def _surface_rule_shares(records, vocabulary):
    """For simple surface rules over the two segments (a segment starts or ends with
    punctuation or a sentence-final mark), the share of swapped pairs among the
    instances each applies to: {rule: (instances it applies to, swapped share)}."""
    from albert_keras.wordpiece import is_punctuation

    final = set("。！？；")
    found = {}
    for record in records:
        n = int(record["input_mask"].sum())
        ids = record["input_ids"][:n]
        sep = int(np.flatnonzero(ids == vocabulary.special.sep)[0])
        a = [vocabulary.pieces[i] for i in ids[1:sep]]
        b = [vocabulary.pieces[i] for i in ids[sep + 1:n - 1]]
        label = int(record["next_sentence_labels"][0])
        for name, segment in (("A", a), ("B", b)):
            for place, piece in (("starts", segment[0]), ("ends", segment[-1])):
                for kind, holds in (("punctuation", is_punctuation(piece[0])),
                                    ("a final mark", piece in final)):
                    if holds:
                        count, swapped = found.get(f"{name} {place} with {kind}", (0, 0))
                        found[f"{name} {place} with {kind}"] = (count + 1, swapped + label)
    return {rule: (count, swapped / count) for rule, (count, swapped) in found.items()}


def test_sop_pairs_of_chinese_paragraphs_carry_no_surface_cue(tmp_path):
    """Chinese paragraphs, one per line: split into sentences, SOP segments meet at
    sentence boundaries and no surface rule predicts the order; read as one sentence per
    line, the segment ends give the order away (why --input_format paragraphs exists)."""
    import json

    from albert_keras.vocabulary import read_vocabulary
    from data_fixtures import wordpiece_vocab_file

    trial = os.path.join(os.path.dirname(BUNDLED), "..", "datasets", "cmrc2018",
                         "cmrc2018_trial.json")
    with open(trial, encoding="utf-8") as f:
        contexts = [p["context"].replace("\n", " ") for a in json.load(f)["data"]
                    for p in a["paragraphs"]]
    (tmp_path / "zh.txt").write_text("\n".join(contexts) + "\n", encoding="utf-8")
    vocabulary = read_vocabulary(wordpiece_vocab_file())
    shares = {}
    for input_format in ("paragraphs", "sentences"):
        summary = cpd.run(cpd.parse_args([
            "--input", str(tmp_path / "zh.txt"), "--spm_model", wordpiece_vocab_file(),
            "--output_dir", str(tmp_path / input_format), "--max_seq_length", "128",
            "--dupe_factor", "3", "--num_output_files", "1", "--seed", "5",
            "--input_format", input_format]))
        records = _records(summary["files_written"])
        shares[input_format] = _surface_rule_shares(records, vocabulary)
    paragraphs = {rule: share for rule, (count, share) in shares["paragraphs"].items()
                  if count >= 200}
    assert len(paragraphs) >= 6, shares["paragraphs"]
    assert all(abs(share - 0.5) < 0.06 for share in paragraphs.values()), paragraphs
    assert max(abs(share - 0.5) for count, share in shares["sentences"].values()
               if count >= 50) > 0.2, shares["sentences"]


@pytest.mark.parametrize("split_cjk", [True, False], ids=["cjk_mode", "plain"])
def test_masking_statistics_on_chinese(tmp_path, split_cjk):
    """Chinese paragraphs with a SentencePiece vocabulary: whole-word masking chooses 15%
    of the maskable pieces, in spans of a few pieces, and no word is too long to be
    masked (the reference word rule makes every piece with a Chinese character a word)."""
    from albert_keras.data import pretraining_dataset
    from albert_keras.vocabulary import train_sentencepiece, write_sentencepiece_model
    from data_fixtures import sib200_sentences

    chinese = sib200_sentences("zho_Hans")
    (tmp_path / "zh.txt").write_text(
        "\n".join("".join(chinese[i:i + 4]) for i in range(0, len(chinese), 4)) + "\n",
        encoding="utf-8")
    model, _ = write_sentencepiece_model(
        train_sentencepiece(chinese, vocab_size=4000, split_cjk=split_cjk),
        str(tmp_path / "spm"))
    summary = cpd.run(cpd.parse_args([
        "--input", str(tmp_path / "zh.txt"), "--spm_model", model, "--output_dir",
        str(tmp_path / "out"), "--max_seq_length", "128", "--dupe_factor", "2",
        "--num_output_files", "1", "--input_format", "paragraphs"]))
    batch = next(iter(pretraining_dataset(summary["files_written"], 256, 128, 20,
                                          training=False, seed=3)))
    mask = batch["input_mask"].numpy()
    ids = batch["input_ids"].numpy()
    maskable = ((mask > 0) & (ids != CLS_ID) & (ids != SEP_ID)).sum(1)
    chosen = batch["masked_lm_weights"].numpy().sum(1)
    share = chosen.sum() / maskable.sum()
    assert 0.13 < share < 0.16, share
    # Spans: runs of consecutive chosen positions.
    positions = batch["masked_lm_positions"].numpy()
    runs = []
    for row, count in zip(positions, chosen.astype(int)):
        chosen_row = sorted(row[:count])
        length = 1
        for a, b in zip(chosen_row, chosen_row[1:]):
            if b == a + 1:
                length += 1
            else:
                runs.append(length)
                length = 1
        runs.append(length)
    assert 1.0 <= np.mean(runs) < 3.0 and max(runs) <= 20, (np.mean(runs), max(runs))
    # Every word fits in max_predictions, so every piece can be masked.
    records = _records(summary["files_written"])
    longest = 0
    for record in records:
        boundary = record["token_boundary"][:int(record["input_mask"].sum())]
        starts = np.flatnonzero(boundary)
        longest = max(longest, int(np.diff(np.append(starts, len(boundary))).max()))
    assert longest <= 20, longest
