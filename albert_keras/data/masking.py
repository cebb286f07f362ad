"""Dynamic n-gram whole-word masking, as TensorFlow ops on a batch.

Pure graph ops (no py_function, no Python loop over tokens), so it runs inside tf.data
workers and under any tf.distribute strategy. Stateless random ops keyed on a seed
make it deterministic; the pipeline keys each batch on (seed, batch index), so every
epoch gets fresh masks.

How spans are chosen, for each sequence (all sequences of a batch at once):
1. Maskable pieces are real tokens other than [CLS], [SEP] and padding. A word starts at
   a piece whose token_boundary is 1 (a "▁" piece, punctuation, <unk>) or after a
   non-maskable piece.
2. Masking is by whole words, so a word of more than max_predictions pieces (common with
   small vocabularies) can never be predicted whole: it is never a candidate, as in the
   reference, which skips a candidate that does not fit even when shortened to one word.
3. The words are cut into consecutive n-grams with n drawn from p(n) ∝ 1/n, n <= 3.
   (Cutting rather than picking overlapping candidates, as the reference does, needs no
   overlap rejection, which keeps the ops vectorised and the n shares exact.) A long
   word (rule 2) cuts the n-gram it falls in: the spans are the runs of fitting words
   inside an n-gram, so every span is whole, consecutive words that all fit. (Only
   sequences with long words see their n-gram shares shift toward shorter spans.)
4. The spans are visited in random order; each is taken whole when the pieces taken
   before it are below a threshold, so that on average the count equals the budget,
   min(max_predictions, max(1, round(masked_lm_prob * maskable pieces))). The rule never
   looks at a span's own size, so long n-grams are not disfavoured (the reference's
   "shorten it if it does not fit" skews the shares toward unigrams). The first span
   visited is always taken, and only a span that would overflow max_predictions is cut
   to the whole words that fit; as each of its words fits, it keeps at least one.
5. A sequence whose maskable words are all too long (rule 2) would get no prediction at
   all (the reference gives it none). It gets instead the first `budget` pieces of one
   of its words, drawn uniformly: the only case where a word is predicted in part.
   Hence every sequence with a maskable piece gets between 1 and max_predictions
   predictions.
6. Each chosen piece becomes [MASK] (80%), a random token (10%) or stays (10%). With a
   vocab_size, random tokens are drawn uniformly from the ordinary pieces, ids
   [5, vocab_size): the reference draws from the whole vocabulary; this leaves out ids
   0-4, the special pieces <pad>, <unk>, [CLS], [SEP], [MASK], so a replacement is
   never a control token nor <unk>. Without one, they are drawn from the maskable
   tokens of the same batch (frequency-weighted, never a special token but possibly
   <unk>), so the reader needs no vocabulary.
"""

from __future__ import annotations

import tensorflow as tf

from albert_keras.special_tokens import SENTENCEPIECE_IDS, SpecialIds


def ngram_probabilities(max_ngram: int = 3) -> list[float]:
    """p(n) ∝ 1/n for n = 1..max_ngram (0.545, 0.273, 0.182 for 3)."""
    weights = [1.0 / n for n in range(1, max_ngram + 1)]
    return [w / sum(weights) for w in weights]


def maskable_positions(input_ids, input_mask, special: SpecialIds = SENTENCEPIECE_IDS):
    """Real tokens other than [CLS], [SEP] and padding: bool, same shape."""
    return (
        (input_mask > 0)
        & (input_ids != special.cls)
        & (input_ids != special.sep)
        & (input_ids != special.pad)
    )


def select_ngram_spans(
    input_ids,
    token_boundary,
    input_mask,
    seed,
    max_predictions: int,
    masked_lm_prob: float = 0.15,
    max_ngram: int = 3,
    special: SpecialIds = SENTENCEPIECE_IDS,
):
    """Chooses the pieces to predict, as whole-word n-grams.

    Args: int tensors [batch, seq] and a seed of shape [2].
    Returns (selected, span): selected is bool [batch, seq]; span is int32 [batch, seq],
    the index of the chosen span a selected piece belongs to and -1 elsewhere. A row with
    a maskable piece gets 1 to max_predictions selected pieces (module docstring).
    """
    input_ids = tf.convert_to_tensor(input_ids)
    shape = tf.shape(input_ids)
    batch, length = shape[0], shape[1]
    maskable = maskable_positions(input_ids, tf.convert_to_tensor(input_mask), special)
    boundary = tf.convert_to_tensor(token_boundary) > 0
    previous_maskable = tf.concat([tf.zeros([batch, 1], tf.bool), maskable[:, :-1]], axis=1)
    word_starts = maskable & (boundary | ~previous_maskable)
    maskable_int = tf.cast(maskable, tf.int32)
    word = tf.maximum(tf.cumsum(tf.cast(word_starts, tf.int32), axis=1) - 1, 0)

    num_maskable = tf.reduce_sum(maskable_int, axis=1)
    budget = tf.cast(tf.round(tf.cast(num_maskable, tf.float32) * masked_lm_prob), tf.int32)
    budget = tf.minimum(max_predictions, tf.maximum(1, budget))
    budget = tf.where(num_maskable > 0, budget, 0)[:, None]

    rows = tf.range(batch)[:, None]
    dummy = batch * length  # segment id for the positions a reduction leaves out

    def per_segment(reduce, values, ids, where):
        flat = tf.where(where, ids + rows * length, dummy)
        return tf.reshape(reduce(values, flat, dummy + 1)[:-1], [batch, length])

    pieces_through = tf.cumsum(maskable_int, axis=1)  # inclusive count at each position
    # A word is consecutive maskable pieces: word w holds pieces word_first[w] to
    # word_last[w] (counted from 1), and starts right after word w - 1 ends.
    word_last = per_segment(tf.math.unsorted_segment_max, pieces_through, word, maskable)
    word_first = tf.pad(word_last[:, :-1], [[0, 0], [1, 0]]) + 1
    last_at, first_at = (tf.gather(v, word, batch_dims=1) for v in (word_last, word_first))
    # A word of more than max_predictions pieces can never be predicted whole (rule 2).
    long_piece = maskable & (last_at - first_at >= max_predictions)
    fits = maskable & ~long_piece

    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=4)
    # Cut the words into n-grams: n-gram k covers words [start_k, start_k + n_k).
    thresholds = tf.constant(
        [sum(ngram_probabilities(max_ngram)[:n]) for n in range(1, max_ngram)], tf.float32
    )
    draw = tf.random.stateless_uniform([batch, length], seed=seeds[0])
    ngram = 1 + tf.reduce_sum(tf.cast(draw[:, :, None] >= thresholds, tf.int32), axis=2)
    ngram_start = tf.cumsum(ngram, axis=1, exclusive=True)
    ngram_index = tf.searchsorted(ngram_start, word, side="right") - 1

    def cut_at_long_words():
        # Spans are the runs of fitting words inside an n-gram: a long word cuts its
        # n-gram. (n-gram, long words so far) never decreases along a row, so a span
        # starts wherever it changes; there are at most `length` spans.
        long_so_far = tf.cumsum(tf.cast(long_piece & word_starts, tf.int32), axis=1)
        key = ngram_index * (length + 1) + long_so_far
        changed = tf.concat([tf.ones([batch, 1], tf.bool), key[:, 1:] != key[:, :-1]], 1)
        return tf.cumsum(tf.cast(changed, tf.int32), axis=1) - 1

    # Without long words (the usual case) the spans are the n-grams.
    span = tf.cond(tf.reduce_any(long_piece), cut_at_long_words, lambda: ngram_index)

    span_size = per_segment(tf.math.unsorted_segment_sum, maskable_int, span, fits)
    span_first = per_segment(tf.math.unsorted_segment_min, pieces_through - 1, span, fits)

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
    # The first span is always taken, and all its words fit in max_predictions, so
    # every sequence with a fitting word gets a prediction.
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
    pieces_to_word_end = last_at - at_span(span_first)
    selected = fits & at_span(take) & (pieces_to_word_end <= at_span(room))
    span = tf.where(selected, span, -1)

    no_fit = (num_maskable > 0) & ~tf.reduce_any(fits, axis=1)

    def with_prefixes():
        # Rule 5: no word fits, so predict the first `budget` pieces of a random word.
        pick = tf.random.stateless_uniform([batch, length], seed=seeds[3])
        start = tf.argmax(tf.where(word_starts, pick, -1.0), axis=1, output_type=tf.int32)
        chosen = tf.gather(word, start[:, None], batch_dims=1)
        prefix = maskable & (word == chosen) & (pieces_through - first_at < budget)
        return (tf.where(no_fit[:, None], prefix, selected),
                tf.where(no_fit[:, None], tf.where(prefix, 0, -1), span))

    return tf.cond(tf.reduce_any(no_fit), with_prefixes, lambda: (selected, span))


def mask_batch(
    features: dict,
    seed,
    max_predictions: int,
    masked_lm_prob: float = 0.15,
    max_ngram: int = 3,
    *,
    vocab_size: int | None = None,
    special: SpecialIds = SENTENCEPIECE_IDS,
) -> dict:
    """Adds dynamic masks to a batch of features.

    features needs input_ids, input_mask, token_boundary ([batch, seq], int). Returns a
    new dict with input_ids masked and masked_lm_positions / masked_lm_ids (int32) and
    masked_lm_weights (float32), all [batch, max_predictions], positions ascending.
    vocab_size: random replacements are drawn uniformly from [special.first_ordinary,
    vocab_size) (the ids after the special pieces: 5 for ALBERT's SentencePiece, 104 for
    BERT's WordPiece); None draws them from this batch's maskable tokens. special: the
    vocabulary's special ids.
    """
    input_ids = tf.cast(features["input_ids"], tf.int32)
    input_mask = tf.cast(features["input_mask"], tf.int32)
    static_length = input_ids.shape[1]
    if static_length is not None and max_predictions > static_length:
        raise ValueError(
            f"max_predictions={max_predictions} exceeds the sequence length {static_length}"
        )
    if vocab_size is not None and vocab_size <= special.first_ordinary:
        raise ValueError(
            f"vocab_size={vocab_size} leaves no ordinary pieces: ids 0-"
            f"{special.first_ordinary - 1} are special or below them"
        )
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=3)
    selected, _ = select_ngram_spans(
        input_ids, features["token_boundary"], input_mask, seeds[0],
        max_predictions, masked_lm_prob, max_ngram, special,
    )
    shape = tf.shape(input_ids)
    batch, length = shape[0], shape[1]

    if vocab_size is not None:  # uniform over the ordinary pieces
        random_ids = tf.random.stateless_uniform(
            [batch, length], seeds[1], minval=special.first_ordinary, maxval=vocab_size,
            dtype=tf.int32)
    else:  # this batch's maskable tokens ([MASK] if it has none)
        pool = tf.concat(
            [tf.boolean_mask(input_ids, maskable_positions(input_ids, input_mask, special)),
             [special.mask]],
            0)
        pool_size = tf.maximum(tf.size(pool) - 1, 1)
        pick = tf.random.stateless_uniform(
            [batch, length], seeds[1], maxval=pool_size, dtype=tf.int32)
        random_ids = tf.gather(pool, pick)
    action = tf.random.stateless_uniform([batch, length], seed=seeds[2])
    masked_ids = tf.where(
        selected & (action < 0.8),
        special.mask,
        tf.where(selected & (action < 0.9), random_ids, input_ids),
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
