"""The pretraining TFRecord layout (the reference create_pretraining_data.py's) and its I/O.

Every record holds, as in the reference:
  input_ids, input_mask, segment_ids, token_boundary   int64 [max_seq_length]
  masked_lm_positions, masked_lm_ids                   int64 [max_predictions_per_seq]
  masked_lm_weights                                    float [max_predictions_per_seq]
  next_sentence_labels                                 int64 [1]  (SOP: 1 = swapped)
Records written for dynamic masking carry masked_lm_* as zeros (weights all 0), so the
reference reader still parses them; our reader masks any record whose weights are all 0.
"""

from __future__ import annotations

import dataclasses
import re
import struct

import numpy as np
import tensorflow as tf

SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids", "token_boundary")
PREDICTION_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
LABEL_FEATURE = "next_sentence_labels"


class CorruptRecordError(ValueError):
    """A TFRecord file that cannot be read; the message names the file and record."""


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _float(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def serialize_instance(
    input_ids, input_mask, segment_ids, token_boundary, label,
    masked_lm_positions, masked_lm_ids, masked_lm_weights,
) -> bytes:
    """One tf.train.Example in the reference layout (sequences already padded)."""
    features = {
        "input_ids": _int64(input_ids),
        "input_mask": _int64(input_mask),
        "segment_ids": _int64(segment_ids),
        "token_boundary": _int64(token_boundary),
        "masked_lm_positions": _int64(masked_lm_positions),
        "masked_lm_ids": _int64(masked_lm_ids),
        "masked_lm_weights": _float(masked_lm_weights),
        LABEL_FEATURE: _int64([int(label)]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(
        deterministic=True  # map keys sorted: byte-identical files
    )


def feature_spec(seq_length: int, max_predictions: int | None) -> dict:
    """tf.io parsing spec; masked_lm_* only when max_predictions is given."""
    spec = {name: tf.io.FixedLenFeature([seq_length], tf.int64) for name in SEQUENCE_FEATURES}
    spec[LABEL_FEATURE] = tf.io.FixedLenFeature([1], tf.int64)
    if max_predictions is not None:
        spec["masked_lm_positions"] = tf.io.FixedLenFeature([max_predictions], tf.int64)
        spec["masked_lm_ids"] = tf.io.FixedLenFeature([max_predictions], tf.int64)
        spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions], tf.float32)
    return spec


def describe_record(serialized: bytes) -> dict[str, np.ndarray]:
    """A record's features as numpy arrays, whatever their lengths."""
    example = tf.train.Example.FromString(serialized)
    described = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        described[name] = np.asarray(values, np.float32 if kind == "float_list" else np.int64)
    return described


def first_record(path: str) -> dict[str, np.ndarray] | None:
    """The first record of a file (None when it has none), with clear errors."""
    try:
        for serialized in tf.data.TFRecordDataset([path]).take(1):
            return describe_record(serialized.numpy())
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        raise CorruptRecordError(f"{path}: record 0 is corrupt: {error.message}") from None
    except Exception as error:  # a protobuf DecodeError, for bytes that are no Example
        raise CorruptRecordError(f"{path}: record 0 is not a tf.train.Example: {error}") from None
    return None


@dataclasses.dataclass(frozen=True)
class Damage:
    """Where a TFRecord file stops being readable: the records read before it, the byte
    offset of the damaged record, and the reader's reason ("corrupted", "truncated").
    TFRecord framing cannot be resynchronised, so the rest of the file is lost."""
    path: str
    good_records: int
    offset: int | None
    reason: str

    def describe(self) -> str:
        where = f"byte {self.offset}" if self.offset is not None else "an unknown offset"
        return (f"{self.path}: {self.reason} record at {where} (record {self.good_records}; "
                f"the {self.good_records} before it are readable)")


_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the data


def check_framing(path: str) -> Damage | None:
    """Walks the record headers only (a seek per record, no data read): a file that ends
    inside a record is truncated. TensorFlow's reader takes a file that ends inside a
    record header for a clean end of file and drops the tail silently; this does not."""
    size = tf.io.gfile.stat(path).length
    offset = count = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            if size - offset >= _HEADER:
                f.seek(offset)
                (length,) = struct.unpack("<Q", f.read(8))
                end = offset + _HEADER + length + _FOOTER
                if end <= size:
                    offset, count = end, count + 1
                    continue
            return Damage(path, count, offset, "truncated")
    return None


def scan_tfrecord(path: str) -> tuple[int, Damage | None]:
    """Reads a whole file: (readable records, the Damage or None)."""
    count = 0
    try:
        for _ in tf.data.TFRecordDataset([path]):
            count += 1
    except tf.errors.DataLossError as error:
        found = re.search(r"(\w+) record at (\d+)", error.message)
        reason, offset = (found.group(1), int(found.group(2))) if found else ("damaged", None)
        return count, Damage(path, count, offset, reason)
    return count, check_framing(path)


def find_damage(paths) -> list:
    """The Damage of every damaged file among paths (a full read of each)."""
    return [damage for damage in (scan_tfrecord(path)[1] for path in paths) if damage]


def find_truncation(paths) -> list:
    """The Damage of every file among paths that ends inside a record (headers only)."""
    return [damage for damage in map(check_framing, paths) if damage]


def verify_tfrecords(paths) -> int:
    """Reads every record of every file; returns the count, or raises CorruptRecordError
    naming the file, the record and its byte offset."""
    total = 0
    for path in paths:
        count, damage = scan_tfrecord(path)
        if damage:
            raise CorruptRecordError(damage.describe())
        total += count
    return total


class RoundRobinWriter:
    """Writes records into several TFRecord files in turn, starting with file `first`."""

    def __init__(self, paths: list[str], first: int = 0):
        self._writers = [tf.io.TFRecordWriter(path) for path in paths]
        self._next = first % len(paths)

    def write(self, record: bytes):
        self._writers[self._next].write(record)
        self._next = (self._next + 1) % len(self._writers)

    def close(self):
        for writer in self._writers:
            writer.close()


def concatenate_records(parts: list[str], path: str):
    """Joins TFRecord files into `path` (valid framing survives concatenation), through
    tf.io.gfile so that gs:// works for the Beam runners. `path` is overwritten: callers
    write it inside a staging folder that is committed as a whole."""
    with tf.io.gfile.GFile(path, "wb") as out:
        for part in parts:
            with tf.io.gfile.GFile(part, "rb") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
