"""Shared test setup: repo root on sys.path, quiet TensorFlow, deterministic seeds."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import pytest  # noqa: E402


from albert_keras.layers import fused_ops  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Every test starts from float32, a fixed seed and the default kernel choice."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    fused_ops.set_fusion("auto")
    yield
    keras.config.set_dtype_policy("float32")
    fused_ops.set_fusion("auto")
