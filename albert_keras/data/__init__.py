"""Pretraining data: corpus reading, SOP instances, the TFRecord layout, dynamic n-gram
masking and the tf.data pipelines. Knows nothing of models. Each fine-tuning task's
data lives with its task (albert_keras/tasks/)."""

from albert_keras.data.masking import mask_batch, select_ngram_spans
from albert_keras.data.pipeline import pretraining_dataset
from albert_keras.data.records import CorruptRecordError, verify_tfrecords

__all__ = [
    "CorruptRecordError",
    "mask_batch",
    "pretraining_dataset",
    "select_ngram_spans",
    "verify_tfrecords",
]
