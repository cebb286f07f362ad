"""Small .keras files of every model kind, written by the code of one release and
checked in (tests/saved_keras/), with their outputs on one fixed batch: the files users
hold keep loading, with the same outputs and the same settings, as the code changes.

    python tests/saved_keras_models.py   # writes tests/saved_keras/ anew (on purpose only)
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DIRECTORY = os.path.join(HERE, "saved_keras")
KINDS = ("backbone", "pretrainer", "classifier", "tagger", "question_answerer",
         "squad2_answerer")
LABEL_NAMES = ["negative", "positive", "neutral"]
TAG_NAMES = ["O", "B-PER", "I-PER"]
ANSWER_SETTINGS = {"max_seq_length": 24, "doc_stride": 8, "max_query_length": 6,
                   "n_best_size": 5, "max_answer_length": 10, "version_2": True,
                   "null_threshold": 0.25}


def batch():
    """The fixed inputs: two rows, the second padded."""
    ids = np.array([[2, 17, 9, 33, 41, 3, 12, 3], [2, 8, 55, 3, 0, 0, 0, 0]], np.int32)
    mask = (ids != 0).astype(np.int32)
    segments = np.array([[0, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    return {"input_ids": ids, "segment_ids": segments, "input_mask": mask,
            "masked_lm_positions": np.array([[1, 3], [2, 0]], np.int32)}


def build(kind):
    import keras

    from albert_keras import (AlbertBackbone, AlbertClassifier, AlbertConfig, AlbertPretrainer,
                              AlbertQuestionAnswerer, AlbertSquad2Answerer, AlbertTagger)

    keras.utils.set_random_seed(KINDS.index(kind))
    config = AlbertConfig(vocab_size=64, embedding_size=8, hidden_size=16,
                          num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                          max_position_embeddings=32)
    if kind == "backbone":
        return AlbertBackbone(config)
    if kind == "pretrainer":
        return AlbertPretrainer(config)
    if kind == "classifier":
        return AlbertClassifier(config, num_labels=3, label_names=LABEL_NAMES)
    if kind == "tagger":
        return AlbertTagger(config, tag_names=TAG_NAMES, window_length=24, window_stride=8)
    if kind == "question_answerer":
        return AlbertQuestionAnswerer(config, answer_settings=ANSWER_SETTINGS)
    return AlbertSquad2Answerer(config, answer_settings=ANSWER_SETTINGS)


def outputs(model):
    """The model's outputs on batch(), as a dict of numpy arrays."""
    import keras

    features = batch()
    if type(model).__name__ != "AlbertPretrainer":
        features.pop("masked_lm_positions")
    found = model(features, training=False)
    if not isinstance(found, dict):
        found = {"output": found}
    return {name: keras.ops.convert_to_numpy(value) for name, value in found.items()
            if not isinstance(value, (list, tuple))}


def write_all():
    os.makedirs(DIRECTORY, exist_ok=True)
    for kind in KINDS:
        model = build(kind)
        np.savez(os.path.join(DIRECTORY, f"{kind}.outputs.npz"), **outputs(model))
        model.save(os.path.join(DIRECTORY, f"{kind}.keras"))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    write_all()
