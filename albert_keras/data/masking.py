"""Dynamic n-gram whole-word masking, as TensorFlow ops on a batch.

Pure graph ops (no py_function, no Python loop over tokens), so it runs inside tf.data
workers and under any tf.distribute strategy. Stateless random ops keyed on a seed
make it deterministic; the pipeline keys each batch on (seed, batch index), so every
epoch gets fresh masks.

How spans are chosen, for each sequence (all sequences of a batch at once):
1. Maskable pieces are real tokens other than [CLS], [SEP] and padding. A word starts at
   a piece whose token_boundary is 1 (a "▁" piece, punctuation, <unk>) or after a
   non-maskable piece.
2. The words are cut into consecutive n-grams with n drawn from p(n) ∝ 1/n, n <= 3.
   (Cutting rather than picking overlapping candidates, as the reference does, needs no
   overlap rejection, which keeps the ops vectorised and the n shares exact.)
3. The n-grams are visited in random order; each is taken whole when the pieces taken
   before it are below a threshold, so that on average the count equals the budget,
   min(max_predictions, max(1, round(masked_lm_prob * maskable pieces))). The rule never
   looks at an n-gram's own size, so long n-grams are not disfavoured (the reference's
   "shorten it if it does not fit" skews the shares toward unigrams). Only an n-gram
   that would overflow max_predictions is cut to the whole words that fit.
4. Each chosen piece becomes [MASK] (80%), a random token (10%) or stays (10%). Random
   tokens are drawn from the maskable tokens of the same batch, so the reader needs no
   vocabulary and never draws a special token.
"""

from __future__ import annotations

import tensorflow as tf

from albert_keras.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID


def ngram_probabilities(max_ngram: int = 3) -> list[float]:
    """p(n) ∝ 1/n for n = 1..max_ngram (0.545, 0.273, 0.182 for 3)."""
    weights = [1.0 / n for n in range(1, max_ngram + 1)]
    return [w / sum(weights) for w in weights]


def maskable_positions(input_ids, input_mask):
    """Real tokens other than [CLS], [SEP] and padding: bool, same shape."""
    return (
        (input_mask > 0)
        & (input_ids != CLS_ID)
        & (input_ids != SEP_ID)
        & (input_ids != PAD_ID)
    )


def select_ngram_spans(
    input_ids,
    token_boundary,
    input_mask,
    seed,
    max_predictions: int,
    masked_lm_prob: float = 0.15,
    max_ngram: int = 3,
):
    """Chooses the pieces to predict, as whole-word n-grams.

    Args: int tensors [batch, seq] and a seed of shape [2].
    Returns (selected, span): selected is bool [batch, seq]; span is int32 [batch, seq],
    the index of the chosen n-gram a selected piece belongs to and -1 elsewhere.
    """
    input_ids = tf.convert_to_tensor(input_ids)
    shape = tf.shape(input_ids)
    batch, length = shape[0], shape[1]
    maskable = maskable_positions(input_ids, tf.convert_to_tensor(input_mask))
    boundary = tf.convert_to_tensor(token_boundary) > 0
    previous_maskable = tf.concat([tf.zeros([batch, 1], tf.bool), maskable[:, :-1]], axis=1)
    word_starts = maskable & (boundary | ~previous_maskable)
    maskable_int = tf.cast(maskable, tf.int32)
    word = tf.maximum(tf.cumsum(tf.cast(word_starts, tf.int32), axis=1) - 1, 0)

    num_maskable = tf.reduce_sum(maskable_int, axis=1)
    budget = tf.cast(tf.round(tf.cast(num_maskable, tf.float32) * masked_lm_prob), tf.int32)
    budget = tf.minimum(max_predictions, tf.maximum(1, budget))
    budget = tf.where(num_maskable > 0, budget, 0)[:, None]

    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=3)
    # Cut the words into n-grams: span k covers words [start_k, start_k + n_k).
    # There are at most `length` spans, as each holds at least one word.
    thresholds = tf.constant(
        [sum(ngram_probabilities(max_ngram)[:n]) for n in range(1, max_ngram)], tf.float32
    )
    draw = tf.random.stateless_uniform([batch, length], seed=seeds[0])
    ngram = 1 + tf.reduce_sum(tf.cast(draw[:, :, None] >= thresholds, tf.int32), axis=2)
    span_start = tf.cumsum(ngram, axis=1, exclusive=True)
    span = tf.searchsorted(span_start, word, side="right") - 1

    # Pieces per span, and the count of maskable pieces before each span and word.
    rows = tf.range(batch)[:, None]
    dummy = batch * length  # segment id for non-maskable positions
    flat_span = tf.where(maskable, span + rows * length, dummy)
    flat_word = tf.where(maskable, word + rows * length, dummy)

    def per_segment(reduce, values, ids):
        return tf.reshape(reduce(values, ids, dummy + 1)[:-1], [batch, length])

    span_size = per_segment(tf.math.unsorted_segment_sum, maskable_int, flat_span)
    pieces_through = tf.cumsum(maskable_int, axis=1)  # inclusive count at each position
    span_first = per_segment(tf.math.unsorted_segment_min, pieces_through - 1, flat_span)
    word_last = per_segment(tf.math.unsorted_segment_max, pieces_through, flat_word)

    # Visit spans in random order and take each one that starts below a threshold.
    # A rule that looks only at the pieces taken before a span, never at its own size,
    # keeps the n-gram shares exact. The crossing span overshoots the threshold by
    # E[X^2] / (2 E[X]) - 1/2 pieces on average (X: span sizes, renewal theory), so
    # the threshold sits that much below the budget, randomly rounded, and the
    # expected count equals the budget.
    sizes = tf.cast(span_size, tf.float32)
    overshoot = 0.5 * tf.reduce_sum(sizes**2, 1, keepdims=True) / tf.maximum(
        tf.reduce_sum(sizes, 1, keepdims=True), 1.0) - 0.5
    jitter = tf.random.stateless_uniform([batch, 1], seed=seeds[2])
    threshold = tf.cast(budget, tf.float32) - 1.0 - overshoot + jitter
    priority = tf.random.stateless_uniform([batch, length], seed=seeds[1])
    priority = tf.where(span_size > 0, priority, 2.0)
    order = tf.argsort(priority, axis=1)
    sorted_size = tf.gather(span_size, order, batch_dims=1)
    taken_before = tf.cumsum(sorted_size, axis=1, exclusive=True)
    # The first span is always taken: every sequence with a word gets a prediction.
    below = (tf.cast(taken_before, tf.float32) <= threshold) | (taken_before == 0)
    take_sorted = below & (sorted_size > 0)
    room_sorted = max_predictions - taken_before  # output slots left for this span
    # Back from visiting order to span order (a scatter, cheaper than a second sort).
    unsort = tf.stack([tf.broadcast_to(rows, tf.shape(order)), order], axis=-1)
    take = tf.scatter_nd(unsort, tf.cast(take_sorted, tf.int32), shape) > 0
    room = tf.scatter_nd(unsort, room_sorted, shape)

    def at_span(values):
        return tf.gather(values, span, batch_dims=1)

    # A span that would overflow max_predictions keeps only the whole words that fit.
    pieces_to_word_end = tf.gather(word_last, word, batch_dims=1) - at_span(span_first)
    selected = maskable & at_span(take) & (pieces_to_word_end <= at_span(room))
    return selected, tf.where(selected, span, -1)


def mask_batch(
    features: dict,
    seed,
    max_predictions: int,
    masked_lm_prob: float = 0.15,
    max_ngram: int = 3,
) -> dict:
    """Adds dynamic masks to a batch of features.

    features needs input_ids, input_mask, token_boundary ([batch, seq], int). Returns a
    new dict with input_ids masked and masked_lm_positions / masked_lm_ids (int32) and
    masked_lm_weights (float32), all [batch, max_predictions], positions ascending.
    """
    input_ids = tf.cast(features["input_ids"], tf.int32)
    input_mask = tf.cast(features["input_mask"], tf.int32)
    static_length = input_ids.shape[1]
    if static_length is not None and max_predictions > static_length:
        raise ValueError(
            f"max_predictions={max_predictions} exceeds the sequence length {static_length}"
        )
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=3)
    selected, _ = select_ngram_spans(
        input_ids, features["token_boundary"], input_mask, seeds[0],
        max_predictions, masked_lm_prob, max_ngram,
    )
    shape = tf.shape(input_ids)
    batch, length = shape[0], shape[1]

    # Random replacements come from this batch's maskable tokens ([MASK] if it has none).
    pool = tf.concat(
        [tf.boolean_mask(input_ids, maskable_positions(input_ids, input_mask)), [MASK_ID]], 0
    )
    pool_size = tf.maximum(tf.size(pool) - 1, 1)
    pick = tf.random.stateless_uniform([batch, length], seeds[1], maxval=pool_size, dtype=tf.int32)
    action = tf.random.stateless_uniform([batch, length], seed=seeds[2])
    masked_ids = tf.where(
        selected & (action < 0.8),
        MASK_ID,
        tf.where(selected & (action < 0.9), tf.gather(pool, pick), input_ids),
    )

    # The selected positions, ascending, padded with 0 to max_predictions.
    positions = tf.range(length)[None, :]
    key = tf.where(selected, positions, length + positions)
    first, _ = tf.math.top_k(-key, k=max_predictions, sorted=True)
    first = -first
    valid = first < length
    masked_positions = tf.where(valid, first, 0)
    outputs = dict(features)
    outputs["input_ids"] = masked_ids
    outputs["masked_lm_positions"] = masked_positions
    outputs["masked_lm_ids"] = tf.where(
        valid, tf.gather(input_ids, masked_positions, batch_dims=1), 0
    )
    outputs["masked_lm_weights"] = tf.cast(valid, tf.float32)
    return outputs
