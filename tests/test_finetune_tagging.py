"""training.finetune with task_type tagging, end to end: UPOS on bundled treebank
sentences and a generated named-entity task, windows shorter than many sentences; the
export's tag_words gives the evaluation's tags for every eval sentence, in a process
that imports only tensorflow and tensorflow_text; tag answers raw text with offsets
and entity spans."""

import json
import os
import subprocess
import sys

import pytest

from data_fixtures import WORDS, tiny_spm_model
from training import finetune, tagging_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "training", "configs", "finetune_tiny.json")
TAGGING_DEMO = os.path.join(ROOT, "training", "configs", "tagging_demo.json")

# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text.
TAG_WORDS_CODE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
export_dir, sentences_path, texts_path, out_path = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
sentences = json.load(open(sentences_path, encoding="utf-8"))
tags = []
for begin in range(0, len(sentences), 16):
    rows = sentences[begin:begin + 16]
    width = max(len(r) for r in rows)
    words = tf.constant([r + [""] * (width - len(r)) for r in rows])
    out = loaded.signatures["tag_words"](words=words)
    for row, count in zip(out["tags"].numpy(), out["word_count"].numpy()):
        tags.append([t.decode() for t in row[:count]])
texts = json.load(open(texts_path, encoding="utf-8"))
raw = {k: v.numpy().tolist() for k, v in loaded.signatures["tag"](text=tf.constant(texts)).items()}
raw = {k: [[x.decode() if isinstance(x, bytes) else x for x in row] if isinstance(row, list)
            else row for row in v] for k, v in raw.items()}
assert "albert_keras" not in sys.modules and "serving" not in sys.modules
json.dump({"tag_words": tags, "tag": raw}, open(out_path, "w", encoding="utf-8"))
"""


def tagging_args(output_dir, **fields):
    args = ["--config", TINY_CONFIG, "--output_dir", str(output_dir),
            "--spm_model", tiny_spm_model(), "--task_type", "tagging"]
    # Not the config's classification file and labels.
    fields.setdefault("eval_file", "")
    fields.setdefault("label_names", None)
    for name, value in fields.items():
        args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


def read_predictions(path):
    sentences, current = [], []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            sentences.append(current)
            current = []
        else:
            current.append(line.rstrip("\n").split("\t"))
    return sentences


def export_and_query(run_dir, tmp_path, sentences, texts):
    from serving import export as export_lib

    export_base = tmp_path / "export"
    assert export_lib.main(["--model", str(run_dir), "--spm_model", tiny_spm_model(),
                            "--export_base", str(export_base)]) == 0
    (tmp_path / "sentences.json").write_text(json.dumps(sentences), "utf-8")
    (tmp_path / "texts.json").write_text(json.dumps(texts), "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", TAG_WORDS_CODE, str(export_base / "1"),
         str(tmp_path / "sentences.json"), str(tmp_path / "texts.json"),
         str(tmp_path / "out.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((tmp_path / "out.json").read_text("utf-8"))


def test_upos_on_treebank_sentences_and_the_export_agrees(tmp_path, capsys):
    blocks = [text for _, text in tagging_study.sentence_blocks(
        os.path.join(ROOT, tagging_study.TREEBANK))]
    (tmp_path / "train.conllu").write_text("".join(blocks[:160]), "utf-8")
    (tmp_path / "dev.conllu").write_text("".join(blocks[160:220]), "utf-8")
    with open(TAGGING_DEMO, encoding="utf-8") as f:
        upos = json.load(f)["task"]["label_names"]
    run_dir = tmp_path / "run"
    # seq_length 16: a window holds 14 pieces, so most sentences take several windows.
    assert finetune.main(tagging_args(
        run_dir, train_file=str(tmp_path / "train.conllu"),
        eval_file=str(tmp_path / "dev.conllu"), label_names=upos, seq_length=16,
        total_steps=200, steps_per_epoch=50, learning_rate=0.003)) == 0
    results = json.loads((run_dir / "eval_results.json").read_text())
    predictions = read_predictions(run_dir / "eval_predictions.tsv")
    words = sum(len(s) for s in predictions)
    gold_nouns = sum(row[1] == "NOUN" for s in predictions for row in s)
    assert results["num_examples"] == 60 and results["words"] == words
    assert results["accuracy"] > 0.4 and results["accuracy"] > 1.5 * gold_nouns / words
    assert "f1" not in results  # UPOS is not an entity tag set

    sentences = [[row[0] for row in s] for s in predictions]
    texts = ["I don't know, said Ms. Müller — it's 9:30!", "", "one"]
    out = export_and_query(run_dir, tmp_path, sentences, texts)
    assert out["tag_words"] == [[row[2] for row in s] for s in predictions]
    raw = out["tag"]
    assert raw["words"][0][:7] == ["I", "don", "'", "t", "know", ",", "said"]
    for i, text in enumerate(texts):
        for word, start, end in zip(raw["words"][i], raw["word_start"][i], raw["word_end"][i]):
            if word:
                assert text[start:end] == word
    assert raw["word_count"] == [18, 0, 1] and "entity_text" not in raw

    # serving.check_tagger (the README's check of an export) agrees on every sentence.
    from serving import check_tagger

    capsys.readouterr()
    assert check_tagger.main(["--model", str(run_dir), "--spm_model", tiny_spm_model(),
                              "--export_dir", str(tmp_path / "export" / "1"),
                              "--data", str(tmp_path / "dev.conllu")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["sentences"] == report["same_sentences"] == 60


def entity_task(path, rows, seed):
    import random

    rng = random.Random(seed)
    people, places = ["music", "album", "band"], ["river", "village", "church"]
    filler = [w for w in WORDS[:80] if w not in people + places]
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- -X- O\n\n")
        for _ in range(rows):
            for _ in range(rng.randint(3, 12)):
                r = rng.random()
                if r < 0.15:
                    for j in range(rng.randint(1, 2)):
                        f.write(f"{rng.choice(people)} X {'B' if j == 0 else 'I'}-PER\n")
                elif r < 0.3:
                    f.write(f"{rng.choice(places)} X B-LOC\n")
                else:
                    f.write(f"{rng.choice(filler)} X O\n")
            f.write("\n")
    return str(path)


def test_entities_end_to_end(tmp_path):
    from albert_keras.tasks.tagging.spans import entity_spans

    train = entity_task(tmp_path / "train.txt", 300, seed=0)
    dev = entity_task(tmp_path / "dev.txt", 40, seed=1)
    run_dir = tmp_path / "run"
    assert finetune.main(tagging_args(run_dir, train_file=train, eval_file=dev,
                                      label_names=None, seq_length=16, total_steps=150,
                                      learning_rate=0.003)) == 0
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["f1_LOC"] > 0.9 and results["f1"] > 0.6
    assert {"precision_PER", "recall_PER", "entities"} <= set(results)

    texts = ["we saw the river and the music album near the church.",
             "Nothing here", "village " * 30]
    raw = export_and_query(run_dir, tmp_path, [["the", "river"]], texts)["tag"]
    found = 0
    for i, text in enumerate(texts):
        count = raw["word_count"][i]
        spans = entity_spans(raw["tags"][i][:count])
        assert raw["entity_count"][i] == len(spans)
        for j, (kind, first, last) in enumerate(spans):
            start, end = raw["word_start"][i][first], raw["word_end"][i][last]
            assert (raw["entity_type"][i][j], raw["entity_start"][i][j],
                    raw["entity_end"][i][j]) == (kind, start, end)
            assert raw["entity_text"][i][j] == text[start:end]
            found += 1
    assert found >= 3


@pytest.mark.parametrize("fields, message", [
    ({"data_format": "xml"}, "field 'task.data_format'"),
    ({"tag_column": 1}, "field 'task.tag_column'"),
    ({"window_stride": 15}, "field 'task.window_stride'"),
    ({"label_names": ["O", "O"]}, "field 'task.label_names'"),
])
def test_bad_tagging_configs(tmp_path, fields, message, capsys):
    train = entity_task(tmp_path / "train.txt", 40, seed=0)
    assert finetune.main(tagging_args(tmp_path / "run", train_file=train, seq_length=16,
                                      **fields)) == 2
    assert message in capsys.readouterr().err


def test_unknown_eval_tag_is_an_error_naming_the_line(tmp_path, capsys):
    train = entity_task(tmp_path / "train.txt", 40, seed=0)
    dev = tmp_path / "dev.txt"
    dev.write_text("river X B-LOC\nmusic X B-ORG\n", "utf-8")
    assert finetune.main(tagging_args(tmp_path / "run", train_file=train,
                                      eval_file=str(dev))) == 2
    assert "dev.txt:2: tag 'B-ORG' is not one of the model's" in capsys.readouterr().err


def test_resume_gives_the_uninterrupted_weights(tmp_path, capsys):
    import keras

    from training.model_setup import weights_fingerprint

    with open(TINY_CONFIG, encoding="utf-8") as f:
        overrides = json.load(f)["model_overrides"]
    overrides.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    train = entity_task(tmp_path / "train.txt", 60, seed=0)
    fields = dict(train_file=train, seq_length=16, model_overrides=overrides,
                  steps_per_epoch=10, eval_steps=0)
    assert finetune.main(tagging_args(tmp_path / "whole", total_steps=30, **fields)) == 0
    assert finetune.main(tagging_args(tmp_path / "parts", total_steps=10, **fields)) == 0
    capsys.readouterr()
    assert finetune.main(tagging_args(tmp_path / "parts", total_steps=30, **fields)) == 0
    assert "Resumed from" in capsys.readouterr().out

    def fingerprint(name):
        return weights_fingerprint(keras.saving.load_model(
            str(tmp_path / name / "final_model.keras"), compile=False))
    assert fingerprint("whole") == fingerprint("parts")


@pytest.mark.parametrize("name", ["train.txt", "train.conllu", "train.jsonl", "train.tsv"])
def test_invalid_utf8_names_the_line_or_is_skipped_and_counted(tmp_path, capsys, name):
    """A fine-tuning file with a damaged line: an error naming the file, line and byte
    offset; with --skip_damaged_records true the line (for tagging, its sentence) is
    skipped, counted, and the run trains on the rest."""
    from albert_keras.tasks.classification.data import read_examples
    from albert_keras.tasks.tagging.data import read_tagged_file

    rows = 40
    path = tmp_path / name
    if name == "train.tsv":
        lines = ["text_a\tlabel"] + [f"river music {i}\t{i % 2}" for i in range(rows)]
    elif name == "train.jsonl":
        lines = [json.dumps({"tokens": ["river", str(i)], "tags": ["B-LOC", "O"]})
                 for i in range(rows)]
    elif name == "train.conllu":
        lines = [f"1\triver\t_\tNOUN\t_\t_\t_\t_\t_\t_\n2\t{i}\t_\tNUM\t_\t_\t_\t_\t_\t_\n"
                 for i in range(rows)]
    else:
        lines = [f"river B-LOC\n{i} O\n" for i in range(rows)]
    data = ("\n".join(lines) + "\n").encode()
    cut = data.index(b"river", len(data) // 2)
    path.write_bytes(data[:cut] + b"\xff" + data[cut + 1:])
    line = data[:cut].count(b"\n") + 1
    message = f"{path}:{line}: not valid UTF-8 at byte {cut} of the file"
    tabular = name == "train.tsv"

    def read(damaged=None):
        if tabular:
            return read_examples(str(path), label_names=["0", "1"], damaged=damaged)[2]
        return read_tagged_file(str(path), damaged=damaged)

    with pytest.raises(ValueError, match=message):
        read()
    damaged = []
    assert len(read(damaged)) == rows - 1 and damaged == [message + " (invalid start byte)"]

    fields = dict(train_file=str(path), seq_length=16, total_steps=4, steps_per_epoch=2,
                  warmup_steps=0, eval_steps=0, global_batch_size=8)
    if tabular:
        args = tagging_args(tmp_path / "run", **fields)
        args[args.index("tagging")] = "classification"
        args += ["--label_names", '["0", "1"]']
    else:
        args = tagging_args(tmp_path / "run", **fields)
    assert finetune.main(args) == 2
    assert message in capsys.readouterr().err
    assert finetune.main(args + ["--skip_damaged_records", "true"]) == 0
    captured = capsys.readouterr()
    assert f"warning: skipped {message}" in captured.err
    assert "Damaged lines skipped: 1" in captured.out
