"""The pretraining input pipeline: TFRecords -> batches that AlbertPretrainer.fit takes.

files (shard per input pipeline) -> shuffle files, repeat -> parallel interleaved reads
-> shuffle records -> batch -> parse + mask (parallel) -> prefetch

Records with stored masks (the reference tool's --static_masking output, or ours) keep
them; records whose masked_lm_weights are all 0 (ours by default) are masked
dynamically, with a seed keyed on (seed, input pipeline, batch index): fresh masks each
epoch, the same masks for the same seed.
"""

from __future__ import annotations

import random

import numpy as np
import tensorflow as tf

from albert_keras.data.masking import mask_batch
from albert_keras.data.records import LABEL_FEATURE, PREDICTION_FEATURES, feature_spec, first_record
from albert_keras.special_tokens import SENTENCEPIECE_IDS, SpecialIds

OUTPUT_FEATURES = (
    "input_ids", "segment_ids", "input_mask",
    "masked_lm_positions", "masked_lm_ids", "masked_lm_weights", LABEL_FEATURE,
)


def expand_file_pattern(file_pattern) -> list[str]:
    """Sorted files for a glob, comma-separated globs or a list of them."""
    patterns = file_pattern.split(",") if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns if p.strip() for f in tf.io.gfile.glob(p.strip())})
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {file_pattern!r}")
    return files


def _records_have_masks(files: list[str], seq_length: int, max_predictions: int) -> bool:
    """Checks the layout on the first record; True when it carries static masks."""
    for path in files:
        record = first_record(path)
        if record is None:
            continue
        missing = [n for n in ("input_ids", "input_mask", "segment_ids", "token_boundary",
                               LABEL_FEATURE) if n not in record]
        if missing:
            raise ValueError(f"{path}: record 0 lacks the features {missing}")
        if record["input_ids"].size != seq_length:
            raise ValueError(
                f"{path}: record 0 holds sequences of {record['input_ids'].size} tokens, "
                f"but seq_length={seq_length}"
            )
        weights = record.get("masked_lm_weights")
        if weights is None or not np.any(weights):
            return False
        if weights.size != max_predictions:
            raise ValueError(
                f"{path}: record 0 stores {weights.size} masked positions, "
                f"but max_predictions={max_predictions}"
            )
        return True
    raise ValueError(f"the files {files[:3]}{'...' if len(files) > 3 else ''} hold no records")


def _stable_seed(*parts) -> int:
    return random.Random(":".join(map(str, parts))).getrandbits(31)


def pretraining_dataset(
    file_pattern,
    batch_size: int,
    seq_length: int,
    max_predictions: int,
    input_context: tf.distribute.InputContext | None = None,
    training: bool = True,
    seed: int | None = None,
    masked_lm_prob: float = 0.15,
    max_ngram: int = 3,
    shuffle_buffer: int = 10_000,
    cycle_length: int = 8,
    vocab_size: int | None = None,
    skip_damaged: bool = False,
    special: SpecialIds = SENTENCEPIECE_IDS,
) -> tf.data.Dataset:
    """A dataset of pretraining batches: dicts of input_ids, segment_ids, input_mask,
    masked_lm_positions, masked_lm_ids (int32), masked_lm_weights (float32),
    next_sentence_labels (int32 [batch, 1]).

    With an input_context (from distribute_datasets_from_function) this pipeline reads
    only its own share of the files (file i goes to pipeline i % num_input_pipelines)
    and batches per replica. training=True shuffles, repeats forever and drops the
    last partial batch (static shapes); training=False reads once, in order.
    seed=None when training draws a random seed and allows nondeterministic order
    (faster); evaluation is always deterministic. vocab_size (the vocabulary's piece
    count) makes the random replacements of dynamic masking uniform over the ids
    [special.first_ordinary, vocab_size), the ordinary pieces; None draws them from each
    batch's own tokens. special: the special ids of the vocabulary the records were
    made with (the masks must not touch its [CLS], [SEP] and padding).
    A damaged record (data/records.py) stops the iteration with DataLossError, or with
    skip_damaged=True ends that file's reading there (the records after it are lost).
    """
    if seq_length < 8:
        raise ValueError(f"seq_length must be at least 8, got {seq_length}")
    if not 1 <= max_predictions < seq_length:
        raise ValueError(
            f"max_predictions must be in [1, seq_length), got {max_predictions} "
            f"with seq_length={seq_length}"
        )
    if vocab_size is not None and vocab_size <= special.first_ordinary:
        raise ValueError(f"vocab_size must exceed {special.first_ordinary}, got {vocab_size}")
    files = expand_file_pattern(file_pattern)
    pipeline = 0
    if input_context is not None:
        pipelines = input_context.num_input_pipelines
        pipeline = input_context.input_pipeline_id
        if len(files) < pipelines:
            raise ValueError(
                f"{len(files)} files cannot be split by file over {pipelines} input "
                f"pipelines; write at least {pipelines} (--num_output_files)"
            )
        files = files[pipeline::pipelines]
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    static = _records_have_masks(files, seq_length, max_predictions)

    deterministic = seed is not None or not training
    if seed is None:  # evaluation masks stay the same from run to run
        seed = random.SystemRandom().getrandbits(31) if training else 0
    seed = _stable_seed(seed, pipeline)

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat()
    def read(path):
        records = tf.data.TFRecordDataset(path)
        return records.ignore_errors() if skip_damaged else records

    dataset = dataset.interleave(
        read,
        cycle_length=min(cycle_length, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=training)

    spec = feature_spec(seq_length, max_predictions if static else None)

    def parse_and_mask(index, serialized):
        parsed = tf.io.parse_example(serialized, spec)
        features = {
            name: tf.cast(value, tf.float32 if name == "masked_lm_weights" else tf.int32)
            for name, value in parsed.items()
        }
        masked = mask_batch(
            features, tf.stack([tf.constant(seed, tf.int64), index]),
            max_predictions, masked_lm_prob, max_ngram, vocab_size=vocab_size, special=special,
        )
        if static:  # keep stored masks; mask only the records that have none
            stored = tf.reduce_any(features["masked_lm_weights"] > 0, axis=1, keepdims=True)
            for name in ("input_ids",) + PREDICTION_FEATURES:
                masked[name] = tf.where(stored, features[name], masked[name])
        return {name: masked[name] for name in OUTPUT_FEATURES}

    dataset = dataset.enumerate().map(
        parse_and_mask,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
