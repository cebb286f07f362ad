"""The CMRC 2018 metric against the official script (training/datasets/cmrc2018/, run
without NLTK's downloadable data) on many prediction sets over the trial set, and by hand."""

import json
import os
import random
import subprocess
import sys

import pytest

from albert_keras.tasks.question_answering import cmrc2018_eval
from training import evaluate_squad

# The module-scoped fixtures are built once, on one worker.
pytestmark = pytest.mark.xdist_group("cmrc2018")

CMRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "training", "datasets", "cmrc2018")
TRIAL = os.path.join(CMRC, "cmrc2018_trial.json")


def _questions():
    with open(TRIAL, encoding="utf-8") as f:
        data = json.load(f)
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield qa["id"], paragraph["context"], qa["answers"]


def prediction_sets():
    """Gold answers, empty ones, spans cut or grown by a characters or two, random spans,
    English and punctuation mixed in, and questions left unanswered."""
    rng = random.Random(0)
    questions = list(_questions())
    sets = {"gold": {q: a[0]["text"] for q, _, a in questions},
            "empty": {q: "" for q, _, _ in questions}}
    for name, (left, right) in {"shorter": (1, -1), "longer": (-2, 3)}.items():
        found = {}
        for qid, context, answers in questions:
            start = answers[0]["answer_start"] + left
            end = answers[0]["answer_start"] + len(answers[0]["text"]) + right
            found[qid] = context[max(start, 0):max(end, 0)]
        sets[name] = found
    found = {}
    for qid, context, _ in questions:
        start = rng.randrange(len(context))
        found[qid] = context[start:start + rng.randint(1, 12)]
    sets["random"] = found
    mixed = {}
    for qid, _, answers in questions:
        text = answers[-1]["text"]
        mixed[qid] = rng.choice([
            text + "，", "《" + text + "》", text.upper() + " The U.S. dollar's rate, 3.5%",
            "Emma Woodhouse-Smith " + text, text + "……", "  " + text + "\t", text[:1]])
    sets["mixed"] = mixed
    sets["unanswered"] = {q: a[0]["text"] for i, (q, _, a) in enumerate(questions) if i % 7}
    return sets


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """name -> (the official script's JSON, the predictions file)."""
    pytest.importorskip("nltk")
    directory = tmp_path_factory.mktemp("cmrc")
    results = {}
    for name, predictions in prediction_sets().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, os.path.join(CMRC, "cmrc2018_evaluate_offline.py"), TRIAL,
             str(path)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results[name] = (json.loads(done.stdout), str(path))
    return results


def test_equals_the_official_script_on_every_prediction_set(official, capsys):
    scores = set()
    for name, (expected, path) in official.items():
        assert evaluate_squad.main([TRIAL, path, "--metric", "cmrc2018"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got == expected, name
        scores.add((expected["EM"], expected["F1"]))
    assert len(scores) == len(official)  # every set scores differently
    assert official["gold"][0]["EM"] == "100.000" and official["empty"][0]["F1"] == "0.000"


def test_auto_chooses_cmrc2018_for_chinese_data(official, capsys):
    expected, path = official["shorter"]
    assert evaluate_squad.main([TRIAL, path]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_by_hand():
    # 北京市 against 北京: 2 shared characters of 3 and 2: F1 = 2 * (2/3 * 1) / (2/3 + 1)
    assert cmrc2018_eval.f1("北京", "北京市") == pytest.approx(0.8)
    assert cmrc2018_eval.exact_match("北京", "北京市") == 0
    assert cmrc2018_eval.exact_match("“北京”", "北京。") == 1  # its punctuation is removed
    # English inside Chinese is cut into words, each one segment.
    assert cmrc2018_eval.mixed_segmentation("在New York的3.5%") == [
        "在", "new", "york", "的", "3.5", "%"]
    assert cmrc2018_eval.f1("New York", "new york city") == pytest.approx(0.8)
    # The longest common run, not a subsequence: 甲乙 丙 vs 甲丙乙 shares runs of 1.
    assert cmrc2018_eval.longest_common_run(list("甲乙丙"), list("甲丙乙")) == 1
    assert cmrc2018_eval.is_chinese(json.load(open(TRIAL, encoding="utf-8")))


def test_fine_tuning_on_cmrc2018_scores_with_its_metric(tmp_path, capsys):
    """A few steps on CMRC 2018 with a WordPiece vocabulary: the per-epoch figures and
    eval_results.json are CMRC 2018's (metric auto), equal to the evaluator's on the
    predictions the run wrote."""
    from data_fixtures import wordpiece_vocab_file
    from training import finetune

    data = json.load(open(TRIAL, encoding="utf-8"))
    for name, articles in (("train", data["data"][:6]), ("dev", data["data"][6:9])):
        (tmp_path / f"{name}.json").write_text(
            json.dumps({"version": "v1.0", "data": articles}, ensure_ascii=False), "utf-8")
    config = os.path.join(os.path.dirname(CMRC), "..", "configs", "finetune_tiny.json")
    run = tmp_path / "run"
    assert finetune.main([
        "--config", config, "--spm_model", wordpiece_vocab_file(), "--output_dir", str(run),
        "--task_type", "question_answering", "--train_file", str(tmp_path / "train.json"),
        "--eval_file", str(tmp_path / "dev.json"), "--seq_length", "64",
        "--task.max_query_length", "16", "--task.doc_stride", "32", "--total_steps", "4",
        "--steps_per_epoch", "4", "--warmup_steps", "1", "--global_batch_size", "8"]) == 0
    results = json.loads((run / "eval_results.json").read_text())
    capsys.readouterr()
    assert evaluate_squad.main([str(tmp_path / "dev.json"), str(run / "predictions.json")]) == 0
    official = json.loads(capsys.readouterr().out)
    assert "%.3f" % results["f1"] == official["F1"]
    assert "%.3f" % results["exact_match"] == official["EM"]
    assert results["total"] == official["TOTAL"] > 10
