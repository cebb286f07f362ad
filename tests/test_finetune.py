"""training.finetune end to end on tiny generated tasks, its config checks, and the
task metrics of albert_keras/tasks/classification/metrics.py against hand-computed values."""

import json
import math
import os
import random

import numpy as np
import pytest

from data_fixtures import WORDS, tiny_spm_model
from training import finetune, model_setup
from albert_keras.tasks.classification import metrics

TINY_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "training", "configs", "finetune_tiny.json")
POSITIVE = ("music", "album", "band", "film", "season")
NEGATIVE = ("river", "village", "church", "station", "north")
FILLER = [w for w in WORDS[:120] if w not in POSITIVE + NEGATIVE]


def pair_task(path, rows, seed):
    """Sentence pairs; the label says which word set text_b's two markers come from."""
    rng = random.Random(seed)
    lines = ["text_a\ttext_b\tlabel"]
    for i in range(rows):
        label = ("negative", "positive")[i % 2]
        words_b = [rng.choice(FILLER) for _ in range(rng.randint(2, 5))]
        for _ in range(2):
            marker = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
            words_b.insert(rng.randint(0, len(words_b)), marker)
        words_a = [rng.choice(FILLER) for _ in range(rng.randint(2, 5))]
        lines.append(f"{' '.join(words_a)}\t{' '.join(words_b)}\t{label}")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return str(path)


def regression_task(path, rows, seed):
    """Single sentences scored by how many positive words they hold (JSONL)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows):
            count = rng.randint(0, 3)
            words = [rng.choice(FILLER) for _ in range(4)] + list(rng.sample(POSITIVE, count))
            rng.shuffle(words)
            f.write(json.dumps({"text_a": " ".join(words), "label": count / 3}) + "\n")
    return str(path)


def tiny_args(output_dir, **fields):
    args = ["--config", TINY_CONFIG, "--output_dir", str(output_dir),
            "--spm_model", tiny_spm_model()]
    for name, value in fields.items():
        args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pair_task")
    return (pair_task(directory / "train.tsv", 224, seed=0),
            pair_task(directory / "dev.tsv", 64, seed=1))


def test_pair_classification_learns_and_saves_a_classifier(tmp_path, pair_files, capsys):
    import keras

    import albert_keras  # noqa: F401  (registers the model classes)

    train, dev = pair_files
    assert finetune.main(tiny_args(tmp_path, train_file=train, eval_file=dev)) == 0
    assert "no init_model" in capsys.readouterr().err
    with open(tmp_path / "eval_results.json", encoding="utf-8") as f:
        results = json.load(f)
    assert set(results) == {"accuracy", "f1", "loss", "matthews_corrcoef", "num_examples",
                            "step"}
    assert results["num_examples"] == 64 and results["step"] == 100
    assert results["accuracy"] >= 0.9, results
    for name in ("spm.model", "albert_config.json", "metrics.csv", "experiment.json"):
        assert (tmp_path / name).is_file(), name
    assert os.listdir(tmp_path / "logs" / "eval")
    assert os.listdir(tmp_path / "checkpoints")

    model = keras.saving.load_model(str(tmp_path / "final_model.keras"), compile=False)
    assert isinstance(model, albert_keras.AlbertClassifier)
    assert model.label_names == ["negative", "positive"] and model.task_type == "classification"


def test_regression_from_a_pretraining_output_and_resume(tmp_path, capsys):
    import keras

    from albert_keras import AlbertConfig, AlbertPretrainer

    with open(TINY_CONFIG, encoding="utf-8") as f:
        overrides = json.load(f)["model_overrides"]
    config = AlbertConfig.from_preset("tiny", vocab_size=400, **overrides)
    pretrained = tmp_path / "pretrain"
    pretrained.mkdir()
    AlbertPretrainer(config).save(str(pretrained / "final_model.keras"))
    saved = model_setup.load_backbone(str(pretrained), "init_model").get_weights()

    train = regression_task(tmp_path / "train.jsonl", 48, seed=0)
    dev = regression_task(tmp_path / "dev.jsonl", 20, seed=1)
    output = tmp_path / "run"
    fields = dict(train_file=train, eval_file=dev, task_type="regression", label_names=None,
                  init_model=str(pretrained), learning_rate=1e-7, warmup_steps=0, eval_steps=0,
                  total_steps=2, steps_per_epoch=2)
    assert finetune.main(tiny_args(output, **fields)) == 0
    with open(output / "eval_results.json", encoding="utf-8") as f:
        results = json.load(f)
    assert set(results) == {"mse", "pearson", "spearman", "num_examples", "step"}
    assert all(math.isfinite(results[k]) for k in ("mse", "pearson", "spearman"))
    model = keras.saving.load_model(str(output / "final_model.keras"), compile=False)
    assert model.task_type == "regression" and model.num_labels == 1
    # A tiny learning rate leaves the loaded backbone as it was saved.
    for before, after in zip(saved, model.backbone.get_weights()):
        np.testing.assert_allclose(before, after, atol=1e-5)

    fields.update(total_steps=4)
    capsys.readouterr()
    assert finetune.main(tiny_args(output, **fields)) == 0
    assert "Resumed from" in capsys.readouterr().out
    with open(output / "eval_results.json", encoding="utf-8") as f:
        assert json.load(f)["step"] == 4


@pytest.mark.parametrize("fields, named", [
    (dict(strategy="bogus"), "'strategy'"),
    (dict(train_file="/nonexistent/train.tsv"), "'train_file'"),
    (dict(label_names=None), "'task.label_names'"),
    (dict(total_steps=30, steps_per_epoch=20), "'total_steps'"),
    (dict(init_model="/nonexistent/model.keras"), "'init_model'"),
    (dict(global_batch_size=1000), "'train_file'"),  # fewer examples than one batch
])
def test_bad_configs_fail_before_training(tmp_path, pair_files, capsys, fields, named):
    train, dev = pair_files
    values = dict(train_file=train, eval_file=dev)
    values.update(fields)
    assert finetune.main(tiny_args(tmp_path, **values)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err, err
    assert not (tmp_path / "checkpoints").exists()


def test_bad_rows_are_named_before_training(tmp_path, pair_files, capsys):
    train, dev = pair_files
    bad = tmp_path / "bad.tsv"
    lines = open(train, encoding="utf-8").read().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tmaybe"
    bad.write_text("\n".join(lines) + "\n", "utf-8")
    assert finetune.main(tiny_args(tmp_path, train_file=str(bad), eval_file=dev)) == 2
    assert f"{bad}:3: label 'maybe'" in capsys.readouterr().err

    single = tmp_path / "single.tsv"  # eval without text_b, training with it
    single.write_text("text_a\tlabel\nthe music\tpositive\n", "utf-8")
    assert finetune.main(tiny_args(tmp_path, train_file=train, eval_file=str(single))) == 2
    assert "'eval_file'" in capsys.readouterr().err


def test_global_batch_must_divide_over_replicas_and_micro_batches():
    from training.experiment import FinetuneExperiment, check_batch_split

    def options(batch, steps):
        return FinetuneExperiment(global_batch_size=batch, gradient_accumulation_steps=steps)

    check_batch_split(options(16, 1), 2, "mirrored")
    check_batch_split(options(16, 4), 2, "mirrored")
    with pytest.raises(ValueError, match="'global_batch_size': 15 is not divisible by the 2"):
        check_batch_split(options(15, 1), 2, "mirrored")
    with pytest.raises(ValueError, match="12 is not divisible by the 2 replicas of strategy "
                                         "mirrored x 4 gradient_accumulation_steps"):
        check_batch_split(options(12, 4), 2, "mirrored")


# ---------------------------------------------------------------- metrics


def test_classification_metrics_by_hand():
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    predictions = [1, 1, 0, 0, 0, 1, 0, 1]
    # tp=3 fp=1 fn=1 tn=3: F1 = 6/8; MCC = (9 - 1) / sqrt(4*4*4*4) = 0.5
    assert metrics.accuracy(labels, predictions) == 0.75
    assert metrics.f1_score(labels, predictions) == pytest.approx(0.75)
    assert metrics.matthews_corrcoef(labels, predictions, 2) == pytest.approx(0.5)
    assert metrics.matthews_corrcoef([0, 1, 0], [1, 1, 1], 2) == 0.0  # one predicted class
    assert metrics.f1_score([0, 0], [0, 0]) == 0.0
    # Three classes, confusion rows (true) [[2,1,0],[0,2,0],[1,0,1]]: c=5, s=7,
    # t=(3,2,2), p=(3,3,1): (35 - 17) / sqrt((49 - 19) * (49 - 17)) = 18 / sqrt(960)
    labels3 = [0, 0, 0, 1, 1, 2, 2]
    predictions3 = [0, 0, 1, 1, 1, 0, 2]
    assert metrics.matthews_corrcoef(labels3, predictions3, 3) == pytest.approx(18 / 960 ** 0.5)


def test_task_metrics_from_logits():
    logits = np.log([[0.25, 0.75], [0.5, 0.5], [0.9, 0.1]])
    results = metrics.task_metrics("classification", [1, 0, 1], logits)
    assert results["loss"] == pytest.approx(-(np.log(0.75) + np.log(0.5) + np.log(0.1)) / 3)
    assert results["accuracy"] == pytest.approx(2 / 3)  # argmax of a tie is class 0
    assert "f1" not in metrics.task_metrics("classification", [0, 2], np.eye(3)[:2])


def test_correlations_by_hand():
    assert metrics.average_ranks([10, 20, 20, 5, 20]).tolist() == [2, 4, 4, 1, 4]
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): dot 4, norms² 5 -> 0.8
    assert metrics.pearson(x, y) == pytest.approx(0.8)
    assert metrics.spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): dot 4.5 / sqrt(4.5 * 5)
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / 22.5 ** 0.5)
    assert math.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))
    results = metrics.task_metrics("regression", [0.0, 1.0, 2.0], [[0.0], [1.0], [2.5]])
    assert results["mse"] == pytest.approx(0.25 / 3) and results["pearson"] < 1
    assert results["spearman"] == pytest.approx(1.0)
