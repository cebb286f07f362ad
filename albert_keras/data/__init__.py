"""Pretraining and fine-tuning data: corpus reading, SOP instances, the TFRecord layout,
dynamic n-gram masking and the tf.data pipelines; for word tagging, the tagged-file
readers and windows (tagging), word splitting (word_split) and entity chunks
(tag_spans). Knows nothing of models."""

from albert_keras.data.finetune_dataset import finetune_dataset, read_examples
from albert_keras.data.masking import mask_batch, select_ngram_spans
from albert_keras.data.pipeline import pretraining_dataset
from albert_keras.data.records import CorruptRecordError, verify_tfrecords

__all__ = [
    "CorruptRecordError",
    "finetune_dataset",
    "mask_batch",
    "pretraining_dataset",
    "read_examples",
    "select_ngram_spans",
    "verify_tfrecords",
]
