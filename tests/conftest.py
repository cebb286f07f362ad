"""Shared test setup: repo root on sys.path, quiet TensorFlow, deterministic seeds."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Every test starts from float32 and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


# `make test` runs two pytest-xdist workers. The modules whose tests take longest, longest
# first, are handed out first, so that the two workers do not end with one of them
# running a long test alone.
LONGEST_FIRST = ("test_finetune_question_answering.py", "test_pretrain.py", "test_export.py",
                 "test_client.py", "test_export_ops.py", "test_finetune_tagging.py",
                 "test_distributed.py", "test_pretraining_data_beam.py",
                 "test_squad2_answerer.py", "test_models.py", "test_gradient_accumulation.py",
                 "test_tagger.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
