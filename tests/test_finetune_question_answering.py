"""training.finetune with task_type question_answering, end to end: a generated SQuAD 2.0
task with a known answer (the one colour word of the context; no colour: no answer),
both heads; predictions.json and null_odds.json score the same with
training.evaluate_squad; the export's `answer` signature, in a process that imports only
tensorflow and tensorflow_text, gives the evaluation path's answers (text and offsets)
for every question of the bundled SQuAD 2.0 sample and for empty, long and non-ASCII
text, and answers a batch of 0; bad configs and files."""

import json
import os
import random
import subprocess
import sys

import pytest

from data_fixtures import WORDS, tiny_spm_model
from albert_keras.tasks.question_answering import official_eval as evaluate_squad
from training import finetune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, "training", "configs", "finetune_tiny.json")
SAMPLE = os.path.join(ROOT, "training", "datasets", "squad2_sample", "squad2-sample.json")
COLOURS = ["red", "blue", "green", "black", "white"]

# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text.
ANSWER_CODE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
*export_dirs, questions_path, out_path = sys.argv[1:]
rows = json.load(open(questions_path, encoding="utf-8"))
results = []
for export_dir in export_dirs:
    answer = tf.saved_model.load(export_dir).signatures["answer"]
    found = {"answer": [], "answer_start": [], "answer_end": [], "no_answer": []}
    for begin in range(0, len(rows), 64):
        chunk = rows[begin:begin + 64]
        out = answer(question=tf.constant([q for q, _ in chunk]),
                     context=tf.constant([c for _, c in chunk]))
        found["answer"] += [t.decode("utf-8") for t in out["answer"].numpy()]
        for name in ("answer_start", "answer_end", "no_answer"):
            found[name] += out[name].numpy().tolist()
    empty = answer(question=tf.constant([], tf.string), context=tf.constant([], tf.string))
    found["empty_batch"] = int(empty["answer"].shape[0])
    results.append(found)
assert "albert_keras" not in sys.modules and "serving" not in sys.modules
json.dump(results, open(out_path, "w", encoding="utf-8"))
"""


def colour_task(path, paragraphs, seed):
    """SQuAD 2.0 JSON: each context holds filler words and at most one colour; "which
    colour is it?" is answered by it, and is unanswerable without one."""
    rng = random.Random(seed)
    filler = [w for w in WORDS[:120] if w not in COLOURS]
    data, count = [], 0
    for p in range(paragraphs):
        words = [rng.choice(filler) for _ in range(rng.randint(8, 70))]
        qas = []
        for q in range(2):
            count += 1
            has_colour = rng.random() < 0.6
            if has_colour:
                at = rng.randrange(len(words))
                colour = rng.choice(COLOURS)
                context_words = words[:at] + [colour] + words[at:]
            else:
                context_words = list(words)
            context = " ".join(context_words) + "."
            question = "which colour is it?" if q == 0 else "what colour do you see?"
            answers = []
            if has_colour:
                start = len(" ".join(context_words[:at])) + (1 if at else 0)
                answers = [{"text": colour, "answer_start": start}]
            qas.append({"id": f"q{seed}-{p}-{q}", "question": question, "answers": answers,
                        "is_impossible": not has_colour})
            data.append({"title": f"t{p}-{q}", "paragraphs": [{"context": context,
                                                                 "qas": qas[-1:]}]})
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": "v2.0", "data": data}, f)
    return str(path)


def qa_args(output_dir, **fields):
    args = ["--config", TINY_CONFIG, "--output_dir", str(output_dir),
            "--spm_model", tiny_spm_model(), "--task_type", "question_answering",
            "--label_names", "null", "--seq_length", "48", "--max_query_length", "12",
            "--doc_stride", "16"]
    fields.setdefault("eval_file", "")  # not the config's classification file
    for name, value in fields.items():
        args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


@pytest.fixture(scope="module")
def colour_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("colours")
    return (colour_task(directory / "train.json", 300, seed=0),
            colour_task(directory / "dev.json", 40, seed=1))


def answers_of_the_evaluation_path(run_dir, examples, null_thresholds):
    """Per threshold (None: the model's stored one), the evaluation path's answers."""
    import dataclasses

    import keras

    from albert_keras.tasks.question_answering.dataset import predict_answers
    from albert_keras.tasks.question_answering.evaluation import forward_function
    from albert_keras.tasks.question_answering.settings import AnsweringSettings
    from albert_keras.tokenizer import AlbertTokenizer

    model = keras.saving.load_model(os.path.join(run_dir, "final_model.keras"))
    assert isinstance(model.settings, AnsweringSettings)
    windows, stored = model.settings.windows, model.settings.answers
    forward = forward_function(model)
    tokenizer = AlbertTokenizer.from_file(tiny_spm_model())
    return [predict_answers(forward, tokenizer, examples, windows,
                            stored if threshold is None
                            else dataclasses.replace(stored, null_threshold=threshold))
            for threshold in null_thresholds]


def export_and_answer(run_dir, tmp_path, rows, null_thresholds):
    """One export per threshold (None: the stored one, else --null_threshold), all
    answered in one process that imports only tensorflow and tensorflow_text."""
    from serving import export as export_lib

    export_dirs = []
    for i, threshold in enumerate(null_thresholds):
        export_base = tmp_path / f"export{i}"
        extra = () if threshold is None else (f"--null_threshold={threshold}",)
        assert export_lib.main(["--model", str(run_dir), "--spm_model", tiny_spm_model(),
                                "--export_base", str(export_base), *extra]) == 0
        version = sorted(os.listdir(export_base),
                         key=lambda v: int(v) if v.isdigit() else 0)[-1]
        export_dirs.append(str(export_base / version))
    (tmp_path / "rows.json").write_text(json.dumps(rows), "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", ANSWER_CODE, *export_dirs,
         str(tmp_path / "rows.json"), str(tmp_path / "out.json")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((tmp_path / "out.json").read_text("utf-8"))


def assert_exports_match_evaluation(run_dir, tmp_path, null_thresholds=(None,)):
    from albert_keras.tasks.question_answering.squad_files import SquadExample, read_squad

    # The sample, then empty text, a context of many windows and non-ASCII text.
    edges = [("", ""), ("Wo wohnt Zoë?", "Zoë wohnt in Köln, sagt sie. " * 120),
             ("Which café?", "東京タワー 😀 the naïve café «Zoë» opened in 1999.")]
    sample = read_squad(SAMPLE) + [SquadExample(f"edge{i}", q, c, (), True)
                                   for i, (q, c) in enumerate(edges)]
    tmp_path.mkdir()
    all_served = export_and_answer(run_dir, tmp_path,
                                   [[e.question, e.context] for e in sample], null_thresholds)
    all_expected = answers_of_the_evaluation_path(run_dir, sample, null_thresholds)
    for served, expected in zip(all_served, all_expected, strict=True):
        assert served["empty_batch"] == 0
        assert served["answer"] == [a["text"] for a in expected]
        assert served["answer_start"] == [a["start"] for a in expected]
        assert served["answer_end"] == [a["end"] for a in expected]
        for example, text, start, end in zip(sample, served["answer"],
                                             served["answer_start"], served["answer_end"]):
            assert example.context[start:end] == text
    return all_served


@pytest.mark.parametrize("qa_head", ["span", "squad2"])
def test_colour_questions_end_to_end(qa_head, colour_files, tmp_path):
    train, dev = colour_files
    run_dir = tmp_path / "run"
    assert finetune.main(qa_args(run_dir, train_file=train, eval_file=dev, qa_head=qa_head,
                                 # the reference head's three parts learn slower
                                 total_steps=300 if qa_head == "squad2" else 150,
                                 steps_per_epoch=100 if qa_head == "squad2" else 50,
                                 learning_rate=0.003)) == 0
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["total"] == results["num_examples"] == 80
    assert results["f1"] > 80 and results["HasAns_total"] > 0 and results["NoAns_total"] > 0
    assert {"best_f1", "best_f1_thresh", "null_threshold"} <= set(results)
    header, *epochs = (run_dir / "metrics.csv").read_text().splitlines()
    assert {"val_exact", "val_f1"} <= set(header.split(",")) and len(epochs) == 3
    # The files are in the official formats: the evaluator scores them the same.
    scored = evaluate_squad.evaluate_files(dev, str(run_dir / "predictions.json"),
                                           str(run_dir / "null_odds.json"),
                                           na_prob_thresh=float("inf"))
    assert scored["exact"] == pytest.approx(results["exact"])
    assert scored["f1"] == pytest.approx(results["f1"])
    # Served answers are the evaluation path's, on real SQuAD text, with the stored
    # threshold and with one that makes the model answer every question.
    thresholds = (None, 1e30) if qa_head == "span" else (None,)
    served = assert_exports_match_evaluation(run_dir, tmp_path / "exports", thresholds)
    if qa_head == "span":
        # A threshold above every null score: only questions without any span candidate
        # stay unanswered.
        assert sum(served[1]["no_answer"]) < len(served[1]["no_answer"]) // 10


@pytest.mark.parametrize("fields, message", [
    ({"qa_head": "xlnet"}, "field 'task.qa_head'"),
    ({"seq_length": "12"}, "field 'seq_length'"),
    ({"squad_version": "3.0"}, "field 'task.squad_version'"),
    ({"doc_stride": "0"}, "field 'task.doc_stride'"),
])
def test_bad_question_answering_configs(colour_files, tmp_path, fields, message, capsys):
    train, _ = colour_files
    assert finetune.main(qa_args(tmp_path / "run", train_file=train, **fields)) == 2
    assert message in capsys.readouterr().err


def test_a_bad_answer_offset_names_the_question_or_is_skipped(colour_files, tmp_path,
                                                              capsys):
    train, _ = colour_files
    data = json.loads(open(train, encoding="utf-8").read())
    broken = next(q for a in data["data"] for p in a["paragraphs"] for q in p["qas"]
                  if q["answers"])
    broken["answers"][0]["answer_start"] += 1
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data), "utf-8")
    assert finetune.main(qa_args(tmp_path / "run", train_file=str(path))) == 2
    error = capsys.readouterr().err
    assert "broken.json" in error and broken["id"] in error
    assert finetune.main(qa_args(tmp_path / "run2", train_file=str(path), total_steps=25,
                                 steps_per_epoch=25, skip_damaged_records="true")) == 0
    assert broken["id"] in capsys.readouterr().err


def test_study_split_keeps_whole_articles_and_the_no_answer_baseline(tmp_path):
    from albert_keras.tasks.question_answering.squad_files import read_squad
    from training import squad_study

    counts = squad_study.write_splits(SAMPLE, str(tmp_path))
    train, dev = read_squad(str(tmp_path / "train.json")), read_squad(str(tmp_path / "dev.json"))
    assert counts == {"train": len(train), "dev": len(dev)} and len(train) + len(dev) == 781
    assert not {e.title for e in train} & {e.title for e in dev}
    baseline = squad_study.no_answer_baseline(str(tmp_path / "dev.json"))
    unanswerable = sum(e.is_impossible for e in dev)
    assert baseline["exact"] == pytest.approx(100 * unanswerable / len(dev))
    assert squad_study.main(["--output_dir", str(tmp_path / "x"), "--train_articles", "3",
                             "--prepare_only"]) == 2


def test_the_best_f1_threshold_answers_nothing_when_nothing_beats_that():
    from albert_keras.tasks.question_answering.evaluation import best_f1_threshold

    # The official search's own result when answering helps, moved off the question that
    # sits on it to the midpoint to the next score (every answer stays as it was):
    found = {"best_f1": 70.0, "NoAns_total": 5, "total": 10}
    assert best_f1_threshold(dict(found, best_f1_thresh=1.5),
                             {"a": -2.0, "b": 1.5, "c": 3.0}) == 2.25
    assert best_f1_threshold(dict(found, best_f1_thresh=3.0),
                             {"a": -2.0, "b": 1.5, "c": 3.0}) == 4.0  # none above
    # Nothing beats answering nothing: below every null_odds, so that all answer "".
    assert best_f1_threshold({"best_f1_thresh": 0.0, "best_f1": 50.0, "NoAns_total": 5,
                              "total": 10}, {"a": -2.0, "b": 3.0}) == -3.0


def test_mirrored_with_accumulation_and_resume(colour_files, tmp_path):
    """Two CPU replicas, two micro-batches each; a second run of the same command
    with more steps resumes from the first's checkpoint (a fresh process: the logical
    CPU devices are set before TensorFlow starts)."""
    train, dev = colour_files
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "training.finetune",
               *qa_args(run_dir, train_file=train, eval_file=dev, strategy="mirrored",
                        num_cpu_devices=2, gradient_accumulation_steps=2, steps_per_epoch=10,
                        eval_steps=2)]
    for steps in (10, 20):
        result = subprocess.run(command + ["--total_steps", str(steps)], cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        assert json.loads((run_dir / "eval_results.json").read_text())["step"] == steps
    assert "Resumed from" in result.stdout and "at step 10" in result.stdout
