"""The shipped experiment configs: every one has only known fields with valid values,
and the few-device recipes reach the reference recipe's batch and schedule."""

import glob
import json
import os

import pytest

from training.experiment import FinetuneExperiment, PretrainExperiment, check_batch_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "training", "configs", "*.json")))
# The fields that decide what is trained, not where or how fast.
RECIPE = ("model_preset", "seq_length", "max_predictions", "global_batch_size",
          "total_steps", "warmup_steps", "optimizer", "learning_rate", "weight_decay",
          "beta_1", "beta_2", "epsilon", "clip_norm")


def load(path):
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    values.pop("description", None)
    kind = FinetuneExperiment if "train_file" in values else PretrainExperiment
    return kind(**values)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_fields_are_known_and_valid(path, monkeypatch):
    experiment = load(path)
    # The data and vocabulary files are the user's; everything else is checked.
    monkeypatch.setattr(os.path, "isfile", lambda p: True)
    monkeypatch.setattr("training.experiment._matches", lambda pattern: True)
    experiment.validate(os.path.basename(path))


@pytest.mark.parametrize("few, reference, replicas", [
    ("base_8gpu.json", "base.json", 8), ("xxlarge_8gpu.json", "xxlarge.json", 8)])
def test_few_device_recipes_keep_the_reference_batch_and_schedule(few, reference, replicas):
    few_config = load(os.path.join(ROOT, "training", "configs", few))
    reference_config = load(os.path.join(ROOT, "training", "configs", reference))
    for field in RECIPE:
        assert getattr(few_config, field) == getattr(reference_config, field), field
    check_batch_split(few_config, replicas, few_config.strategy)
    micro_batch = few_config.global_batch_size // (
        replicas * few_config.gradient_accumulation_steps)
    assert micro_batch * replicas * few_config.gradient_accumulation_steps == 4096
    assert few_config.gradient_accumulation_steps > 1
    assert few_config.strategy == "mirrored"
