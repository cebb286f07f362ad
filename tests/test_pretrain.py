"""training.pretrain end to end on tiny generated data: SOP learnability, TensorBoard
scalars, resume after SIGKILL, NaN handling, bad configs, multi-worker outputs."""

import csv
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from test_distributed import run_two_workers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMBERS = ("one two three four five six seven eight nine ten eleven twelve thirteen "
           "fourteen fifteen sixteen").split()


def counting_corpus(path, documents=400, seed=0):
    """Documents that open with "begin", count up, and close with "end": the original
    order is easy to see."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(documents):
            start = rng.randrange(0, 10)
            middle = [f"{NUMBERS[start + i]} ." for i in range(rng.randint(1, 4))]
            f.write("\n".join(["begin .", *middle, "end ."]) + "\n\n")
    return path


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from training import build_vocab, create_pretraining_data
    root = tmp_path_factory.mktemp("pretrain_data")
    counting_corpus(root / "train.txt", seed=0)
    counting_corpus(root / "eval.txt", documents=80, seed=1)
    assert build_vocab.main(["--input", str(root / "train.txt"), "--vocab_size", "64",
                             "--model_prefix", str(root / "spm")]) == 0
    for split in ("train", "eval"):
        assert create_pretraining_data.main([
            "--input", str(root / f"{split}.txt"), "--spm_model", str(root / "spm.model"),
            "--output_dir", str(root / split), "--max_seq_length", "24",
            "--max_predictions_per_seq", "3", "--dupe_factor", "4",
            "--num_output_files", "2", "--short_seq_prob", "0"]) == 0
    return root


def flags(records, output_dir, **overrides):
    values = {"config": os.path.join(ROOT, "training/configs/tiny.json"),
              "output_dir": str(output_dir), "spm_model": str(records / "spm.model"),
              "train_files": str(records / "train/*.tfrecord"),
              "eval_files": str(records / "eval/*.tfrecord"), "seq_length": "24",
              "max_predictions": "3"}
    values.update({k: str(v) for k, v in overrides.items()})
    return [item for key, value in values.items() for item in (f"--{key}", value)]


def cli(argv, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "training.pretrain", *argv], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def test_sop_is_learnable_and_every_scalar_is_logged(records, tmp_path):
    from training import pretrain
    output = tmp_path / "run"
    code = pretrain.main(flags(records, output, total_steps=500, steps_per_epoch=100,
                               global_batch_size=16, optimizer="adamw", learning_rate=0.005,
                               warmup_steps=10, eval_steps=4,
                               model_overrides='{"hidden_size": 64, "num_hidden_layers": 2, '
                                               '"num_attention_heads": 2}'))
    assert code == 0
    with open(output / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5
    assert float(rows[-1]["sentence_order_accuracy"]) > 0.9
    assert float(rows[-1]["val_sentence_order_accuracy"]) > 0.9
    for name in ("final_model.keras", "albert_config.json", "spm.model", "experiment.json"):
        assert (output / name).exists(), name
    assert json.loads((output / "experiment.json").read_text())["total_steps"] == 500

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    expected = {"loss", "masked_lm_loss", "masked_lm_accuracy", "sentence_order_loss",
                "sentence_order_accuracy", "learning_rate", "sequences_per_second"}
    tags = {}
    for run in ("train", "validation"):
        accumulator = EventAccumulator(str(output / "logs" / run), size_guidance={"tensors": 0})
        accumulator.Reload()
        tags[run] = {tag.removeprefix("epoch_") for tag in accumulator.Tags()["tensors"]}
    assert expected <= tags["train"], tags["train"]
    assert expected - {"learning_rate", "sequences_per_second"} <= tags["validation"]


def checkpoint_steps(output):
    return sorted(int(path.split("-")[-1].split(".")[0])
                  for path in glob.glob(str(output / "checkpoints" / "ckpt-*.index")))


def restorable_step(output):
    """The step a restart restores: the checkpoint the manager's index names (it names
    one only after its files are complete; files alone may be a save cut short)."""
    import tensorflow as tf
    directory = output / "checkpoints"
    latest = tf.train.latest_checkpoint(str(directory)) if directory.is_dir() else None
    return int(latest.rsplit("-", 1)[-1]) if latest else None


def final_fingerprint(stdout):
    line = next(line for line in stdout.splitlines() if line.startswith("final:"))
    return dict(item.split("=", 1) for item in line.split()[1:])["weights_fingerprint"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(records, tmp_path,
                                                                   accumulate, capsys):
    """Killed at any point (with accumulate 2, most likely between the micro-batches of
    an update), restarted, finished: the same weights as a run never killed (which runs
    in this process; the killed one and its restart in their own)."""
    from training import pretrain

    argv = flags(records, tmp_path / "run", total_steps=40, steps_per_epoch=10,
                 keep_checkpoints=10, gradient_accumulation_steps=accumulate)
    assert pretrain.main(flags(records, tmp_path / "whole", total_steps=40, steps_per_epoch=10,
                               gradient_accumulation_steps=accumulate)) == 0
    expected = final_fingerprint(capsys.readouterr().out)

    output = tmp_path / "run"
    process = cli(argv)
    deadline = time.time() + 180
    while restorable_step(output) is None and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert restorable_step(output), "no checkpoint before the deadline"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = restorable_step(output)
    assert killed_at < 40, "the run finished before it could be killed"

    restarted = cli(argv)
    out, err = restarted.communicate(timeout=240)
    assert restarted.returncode == 0, err[-3000:]
    assert "Resumed from" in out and f"at step {killed_at}" in out
    assert "step=40" in out
    assert checkpoint_steps(output) == [10, 20, 30, 40]
    assert final_fingerprint(out) == expected


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(records, tmp_path):
    from training import pretrain
    output = tmp_path / "run"
    assert pretrain.main(flags(records, output, total_steps=10, steps_per_epoch=10,
                               profile_steps="3,4")) == 0
    assert glob.glob(str(output / "logs" / "**" / "*.xplane.pb"), recursive=True), \
        "no profiler trace for --profile_steps"
    # Continue with an absurd learning rate: the weights blow up to inf/NaN.
    code = pretrain.main(flags(records, output, total_steps=30, steps_per_epoch=10,
                               learning_rate=1e30, warmup_steps=0, clip_norm=0))
    assert code == 2
    assert checkpoint_steps(output) == [10]
    import tensorflow as tf

    from albert_keras import AlbertPretrainer
    from training.experiment import PretrainExperiment
    from training.model_setup import make_optimizer, model_config, restore_latest
    experiment = PretrainExperiment(**json.loads((output / "experiment.json").read_text()))
    config = model_config(experiment)
    model = AlbertPretrainer(config)
    model.compile(optimizer=make_optimizer(experiment, config.fusion))
    _, step = restore_latest(model, str(output / "checkpoints"))
    assert step == 10
    assert all(bool(tf.reduce_all(tf.math.is_finite(w))) for w in model.weights)


@pytest.mark.parametrize("override,message", [
    ({"strategy": "quantum"}, "strategy"),
    ({"train_files": "/nonexistent/*.tfrecord"}, "train_files"),
    ({"precision": "float8"}, "precision"),
    ({"fusion": "triton"}, "fusion"),
    ({"kernels": "triton"}, "field 'fusion': unknown fusion 'triton'"),  # its former name
    ({"remat": "everything"}, "field 'remat': unknown remat 'everything'"),
    ({"remat": "block", "jit_compile": "true"}, "saves no memory under jit_compile"),
    ({"remat": "block", "strategy": "tpu"}, "saves no memory under strategy tpu"),
    ({"total_steps": 25, "steps_per_epoch": 10}, "total_steps"),
    ({"max_predictions": 30}, "max_predictions"),
    ({"gradient_accumulation_steps": 3}, "8 does not split into gradient_accumulation_steps (3)"),
    ({"gradient_accumulation_steps": 0}, "'gradient_accumulation_steps': must be positive"),
])
def test_bad_configs_fail_before_training(records, tmp_path, capsys, override, message):
    from training import pretrain
    output = tmp_path / "run"
    assert pretrain.main(flags(records, output, **override)) == 2
    assert message in capsys.readouterr().err
    assert not (output / "checkpoints").exists()


def test_batch_not_divisible_by_replicas_fails_before_training(records, tmp_path):
    process = cli(flags(records, tmp_path / "run", strategy="mirrored", num_cpu_devices=2,
                        global_batch_size=7))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "global_batch_size" in err and "not divisible" in err


def test_multi_worker_only_the_chief_writes(records, tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "training.pretrain",
               *flags(records, output, strategy="multi_worker", total_steps=4,
                      steps_per_epoch=2, eval_steps=1)]
    results = run_two_workers(command)
    for code, out, err in results:
        assert code == 0, err[-3000:]
    fingerprints = {line.split("weights_fingerprint=")[1].split()[0]
                    for _, out, _ in results for line in out.splitlines()
                    if "weights_fingerprint=" in line}
    assert len(fingerprints) == 1
    assert sorted(os.listdir(output)) == sorted(
        ["albert_config.json", "checkpoints", "experiment.json", "final_model.keras",
         "logs", "metrics.csv", "spm.model"])
    assert checkpoint_steps(output) == [2, 4]


def test_damaged_records_stop_with_one_line_or_are_skipped(records, tmp_path, capsys):
    """A copy of the records with one file cut short: training stops before it starts
    with one line naming the file and byte offset (exit 2, the good run's checkpoint
    kept); a record corrupted in the middle of a file stops it when read, the same way;
    --skip_damaged_records true trains on, and counts the files."""
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from training import pretrain
    data = tmp_path / "data"
    shutil.copytree(records / "train", data / "train")
    output = tmp_path / "run"
    base = dict(train_files=str(data / "train/*.tfrecord"), eval_steps=0, eval_files="",
                steps_per_epoch=5, global_batch_size=8)
    assert pretrain.main(flags(records, output, total_steps=5, **base)) == 0
    corrupted, damaged = sorted((data / "train").iterdir())
    raw = damaged.read_bytes()
    # Records here all have one size, so half the file is a record boundary: cut inside
    # a header (which TensorFlow's reader takes for a clean end), data, the last footer.
    for cut in (len(raw) // 2 + 5, len(raw) // 2 + 50, len(raw) - 3):
        damaged.write_bytes(raw[:cut])
        capsys.readouterr()
        assert pretrain.main(flags(records, output, total_steps=200, **base)) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1, error
        assert f"{damaged}: truncated record at byte " in error
        assert checkpoint_steps(output) == [5]

    damaged.write_bytes(raw)
    middle = bytearray(corrupted.read_bytes())
    middle[len(middle) // 2 + 50] ^= 0xFF  # in a record's data: its CRC fails
    corrupted.write_bytes(bytes(middle))
    assert pretrain.main(flags(records, output, total_steps=200, **base)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert f"{corrupted}: corrupted record at byte " in error
    assert "the last checkpoint" in error and "is kept" in error
    assert checkpoint_steps(output)[0] >= 5

    damaged.write_bytes(raw[:len(raw) // 2 + 50])

    assert pretrain.main(flags(records, output, total_steps=200, skip_damaged_records="true",
                               **base)) == 0
    captured = capsys.readouterr()
    assert f"warning: skipping the rest of {damaged}: truncated record" in captured.err
    assert f"warning: skipping the rest of {corrupted}: corrupted record" in captured.err
    assert "Damaged record files: 2" in captured.out
    accumulator = EventAccumulator(str(output / "logs" / "data"), size_guidance={"tensors": 0})
    accumulator.Reload()
    assert "damaged_record_files" in accumulator.Tags()["tensors"]
