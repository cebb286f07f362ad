"""The files a training run leaves in its output directory, named once: what fine-tuning,
the studies and the exporter read back from a run."""

from __future__ import annotations

import os

FINAL_MODEL = "final_model.keras"
MODEL_CONFIG = "albert_config.json"
SENTENCEPIECE_MODEL = "spm.model"
# The vocabulary file a run writes beside its model, by the vocabulary's kind.
VOCABULARY_FILES = {"sentencepiece": SENTENCEPIECE_MODEL, "wordpiece": "vocab.txt"}


def model_file(path: str) -> str:
    """path itself (a .keras file), or path/final_model.keras when path is a run's
    directory."""
    return os.path.join(path, FINAL_MODEL) if os.path.isdir(path) else path
