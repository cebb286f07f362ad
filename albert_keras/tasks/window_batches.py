"""Words -> pieces -> overlapping windows: the arithmetic that word tagging and question
answering share, in TensorFlow ops (training, evaluation and exported signatures all
run it).

- For tagging, each word is tokenized on its own (word_pieces); a word that
  SentencePiece turns into nothing becomes one <unk>, so that every word owns at least
  one piece. Question answering tokenizes the context whole (question_answering/windows.py).
- A text of N pieces is read in windows of at most C pieces (the window's capacity),
  window k starting at piece k * stride, as many as needed to cover the text:
  1 + ceil(max(N - C, 0) / stride) windows. Texts are never truncated.
- A piece is read best in the window where it has the most context, min(pieces left of
  it, pieces right of it) + 0.01 * window length, the first such window on ties: the
  reference BERT's _check_is_max_context.

Capacity and stride may differ from text to text (a question answerer's window holds
the question too), so both are per-row tensors here.
"""

from __future__ import annotations

import tensorflow as tf

def word_pieces(tokenizer, words: tf.Tensor) -> tf.RaggedTensor:
    """Words [n] (strings) -> int32 piece ids [n, (pieces)], at least one per word."""
    pieces = tokenizer.tokenize(words)
    empty = tf.cast(pieces.row_lengths() == 0, pieces.row_splits.dtype)
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], tokenizer.special.unk), empty)
    return tf.concat([tf.cast(pieces, tf.int32), unknown], axis=1)


def window_counts(lengths, capacity, stride):
    """Windows per text of `lengths` pieces (all int32 [texts] or scalars)."""
    return 1 + (tf.maximum(lengths - capacity, 0) + stride - 1) // stride


def best_windows(first, length, count, capacity, stride):
    """For pieces at `first` in texts of `length` pieces cut into `count` windows of
    `capacity` every `stride` (all int32 [pieces]): the index of the window that reads
    each piece best (module docstring), vectorized over the candidate windows (at most
    ceil(capacity / stride) hold a piece). capacity and stride may be scalars."""
    capacity = tf.broadcast_to(capacity, tf.shape(first))
    stride = tf.broadcast_to(stride, tf.shape(first))
    candidates = tf.reduce_max(tf.concat([-(-capacity // stride), [1]], axis=0))
    lowest = tf.maximum(0, (first - capacity) // stride + 1)  # first window holding it
    k = lowest[:, None] + tf.range(candidates)[None, :]
    start = k * stride[:, None]
    end = tf.minimum(start + capacity[:, None], length[:, None])  # exclusive
    holds = (k < count[:, None]) & (start <= first[:, None]) & (first[:, None] < end)
    context = tf.cast(tf.minimum(first[:, None] - start, end - 1 - first[:, None]), tf.float32)
    score = tf.where(holds, context + 0.01 * tf.cast(end - start, tf.float32), -1.0)
    return lowest + tf.cast(tf.argmax(score, axis=1), tf.int32)


def window_batches(examples: tf.data.Dataset, count: int, to_windows, batch_size: int,
                   training: bool, input_context=None, seed=None, examples_per_map: int = 64,
                   shuffle_buffer: int = 10_000) -> tf.data.Dataset:
    """Examples (count of them) -> batches of their windows. to_windows maps a batch of
    examples to a dict of per-window tensors. training=True shuffles examples and
    windows and drops the last partial batch; with a tf.distribute.InputContext, each
    input pipeline takes every num_input_pipelines-th example and batches per replica.
    Ragged examples are batched as ragged."""
    if input_context is not None:
        examples = examples.shard(input_context.num_input_pipelines,
                                  input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if training:
        examples = examples.shuffle(min(shuffle_buffer, max(count, 1)), seed=seed)
    windows = examples.ragged_batch(examples_per_map).map(
        to_windows, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    if training:
        windows = windows.shuffle(shuffle_buffer, seed=seed)
    return windows.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
