import json

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.tasks.classification.data import finetune_dataset, read_examples
from albert_keras.tokenizer import AlbertTokenizer
from data_fixtures import tiny_spm_model


@pytest.fixture(scope="module")
def tokenizer():
    return AlbertTokenizer.from_file(tiny_spm_model())


ROWS = [("the city is large", "a small village", "yes"),
        ("music of the band", "the album", "no"),
        ("Héllo wörld", "東京", "yes"),
        ("", "empty first", "no"),
        ("one more", "two more", "yes")]


def test_formats_agree_and_tokenize_in_graph(tmp_path, tokenizer):
    (tmp_path / "d.tsv").write_text(
        "text_a\ttext_b\tlabel\n" + "".join(f"{a}\t{b}\t{l}\n" for a, b, l in ROWS), "utf-8")
    (tmp_path / "d.csv").write_text(
        "label,text_a,text_b\n" + "".join(f'{l},"{a}","{b}"\n' for a, b, l in ROWS), "utf-8")
    (tmp_path / "d.jsonl").write_text("".join(
        json.dumps({"text_a": a, "text_b": b, "label": l}) + "\n" for a, b, l in ROWS), "utf-8")
    expected = tokenizer([r[0] for r in ROWS], [r[1] for r in ROWS], seq_length=16)
    for name in ("d.tsv", "d.csv", "d.jsonl"):
        dataset = finetune_dataset(str(tmp_path / name), tokenizer, 16, 8,
                                   label_names=["no", "yes"], training=False)
        features, labels = next(iter(dataset))
        assert labels.numpy().tolist() == [1, 0, 1, 0, 1]
        for key in ("input_ids", "segment_ids", "input_mask"):
            np.testing.assert_array_equal(features[key].numpy(), expected[key].numpy())
    training = finetune_dataset(str(tmp_path / "d.tsv"), tokenizer, 16, 2,
                                label_names=["no", "yes"], seed=0)
    assert training.element_spec[0]["input_ids"].shape == (2, 16)
    assert len(list(training)) == 2


def test_single_sentences_regression_and_sharding(tmp_path, tokenizer):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"text_a": f"the city {i}", "label": i / 4}) + "\n"
                            for i in range(8)), "utf-8")
    text_a, text_b, labels = read_examples(str(path), "regression")
    assert text_b is None and labels.dtype == np.float32
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, 2)
        dataset = finetune_dataset(str(path), tokenizer, 12, 4, "regression",
                                   training=False, input_context=context)
        batches = list(dataset)
        assert batches[0][0]["segment_ids"].numpy().max() == 0
        seen += [float(x) for _, y in batches for x in y.numpy()]
        assert max(len(y) for _, y in batches) == 2
    assert sorted(seen) == sorted(labels.tolist())


def test_errors_name_file_and_line(tmp_path):
    bad_label = tmp_path / "bad.tsv"
    bad_label.write_text("text_a\tlabel\nfine\t0\nnot fine\tmaybe\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:3: label 'maybe' is not a non-negative"):
        read_examples(str(bad_label))
    with pytest.raises(ValueError, match=r"bad.tsv:2: label '0' is not one of \['no', 'yes'\]"):
        read_examples(str(bad_label), label_names=["no", "yes"])
    missing = tmp_path / "missing.csv"
    missing.write_text("sentence,label\nhello,1\n", "utf-8")
    with pytest.raises(ValueError, match=r"missing.csv:2: missing column 'text_a'"):
        read_examples(str(missing))
    fields = tmp_path / "fields.tsv"
    fields.write_text("text_a\tlabel\nhello\t1\textra\n", "utf-8")
    with pytest.raises(ValueError, match=r"fields.tsv:2: 3 fields"):
        read_examples(str(fields))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text_a": "a", "label": 1}\n{"text_a": \n', "utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl:2: not valid JSON"):
        read_examples(str(broken))
    with pytest.raises(ValueError, match=r"regression.*number|is not a number"):
        (tmp_path / "reg.jsonl").write_text('{"text_a": "a", "label": "x"}\n', "utf-8")
        read_examples(str(tmp_path / "reg.jsonl"), "regression")
    (tmp_path / "x.txt").write_text("text_a\tlabel\n")
    with pytest.raises(ValueError, match="unknown format"):
        read_examples(str(tmp_path / "x.txt"))
    with pytest.raises(FileNotFoundError, match="nowhere.tsv"):
        read_examples(str(tmp_path / "nowhere.tsv"))

