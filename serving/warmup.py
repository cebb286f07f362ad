"""TF Serving warmup records: assets.extra/tf_serving_warmup_requests.

TF Serving replays these PredictionLog records when it loads a version, before the
version takes traffic, so the first real request does not pay for graph
initialisation. One small PredictRequest per signature.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

_TEXT = np.array([b"The quick brown fox jumps over the lazy dog.", b"A short one."])
_TEXT_B = np.array([b"It was a sunny day.", b"Another sentence."])

# The shared signatures' inputs; each task gives its own (Task.example_inputs).
SHARED_EXAMPLE_INPUTS = {
    "embed": {"text": _TEXT},
    "embed_pair": {"text": _TEXT, "text_b": _TEXT_B},
    "tokenize": {"text": _TEXT},
    "encode": {
        "input_ids": np.array([[2, 10, 11, 3], [2, 12, 3, 0]], np.int32),
        "segment_ids": np.zeros([2, 4], np.int32),
        "input_mask": np.array([[1, 1, 1, 1], [1, 1, 1, 0]], np.int32),
    },
}


def example_inputs(name: str, task=None) -> dict:
    """The warmup inputs of signature `name`: a shared signature's, else the serving
    task's (Task.example_inputs)."""
    if name in SHARED_EXAMPLE_INPUTS:
        return SHARED_EXAMPLE_INPUTS[name]
    if task is not None and name in task.example_inputs:
        return task.example_inputs[name]
    raise ValueError(f"no example inputs for signature {name!r}: the task that serves the "
                     f"model gives one per signature (Task.example_inputs) for the warmup "
                     f"requests")


def warmup_requests(model_name: str, signature_names, task=None) -> list:
    """One PredictRequest per signature, with its example_inputs."""
    requests = []
    for name in signature_names:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name))
        for key, value in example_inputs(name, task).items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        requests.append(request)
    return requests


def write_warmup_file(saved_model_dir: str, model_name: str, signature_names,
                      task=None) -> str:
    """Writes SAVED_MODEL_DIR/assets.extra/tf_serving_warmup_requests; returns its path."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in warmup_requests(model_name, signature_names, task):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(path: str) -> list:
    """The PredictRequests in a warmup file, in order."""
    requests = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        requests.append(log.predict_log.request)
    return requests
