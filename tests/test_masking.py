import collections

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.data.masking import mask_batch, ngram_probabilities, select_ngram_spans
from albert_keras.special_tokens import CLS_ID, MASK_ID, PAD_ID, SEP_ID
from data_fixtures import instance_arrays

SEQ, MAX_PRED = 128, 20


@pytest.fixture(scope="module")
def batch():
    arrays, _ = instance_arrays(500, SEQ, seed=3)
    assert len(arrays["input_ids"]) > 450
    return arrays


def _word_starts(arrays):
    ids, mask = arrays["input_ids"], arrays["input_mask"]
    maskable = (mask > 0) & ~np.isin(ids, [CLS_ID, SEP_ID, PAD_ID])
    previous = np.concatenate([np.zeros_like(maskable[:, :1]), maskable[:, :-1]], axis=1)
    return maskable, maskable & ((arrays["token_boundary"] > 0) | ~previous)


def test_rate_ngrams_and_whole_words(batch):
    maskable, starts = _word_starts(batch)
    shares = collections.Counter()
    selected_total = 0
    for seed in range(3):
        selected, span = (t.numpy() for t in select_ngram_spans(
            batch["input_ids"], batch["token_boundary"], batch["input_mask"], [seed, 1], MAX_PRED))
        assert not (selected & ~maskable).any()  # never [CLS], [SEP] or padding
        assert selected.sum(axis=1).max() <= MAX_PRED
        selected_total += selected.sum()
        for row in range(len(span)):
            for index in np.unique(span[row][span[row] >= 0]):
                positions = np.flatnonzero(span[row] == index)
                # a whole-word n-gram: consecutive maskable pieces (it may step over a
                # [SEP], as the reference's do), starting and ending at word edges
                inside = np.arange(positions[0], positions[-1] + 1)
                assert (np.isin(inside, positions) | ~maskable[row, inside]).all()
                assert starts[row, positions[0]]
                after = positions[-1] + 1
                assert after == SEQ or not maskable[row, after] or starts[row, after]
                shares[int(starts[row, positions].sum())] += 1
    rate = selected_total / (3 * maskable.sum())
    assert abs(rate - 0.15) <= 0.01, rate
    total = sum(shares.values())
    for n, p in enumerate(ngram_probabilities(3), start=1):
        assert abs(shares[n] / total - p) <= 0.03, (n, shares[n] / total, p)
    assert set(shares) <= {1, 2, 3}


def test_replacements_80_10_10(batch):
    counts = collections.Counter()
    for seed in range(3):
        out = mask_batch(batch, [seed, 2], MAX_PRED)
        weights = out["masked_lm_weights"].numpy() > 0
        positions = out["masked_lm_positions"].numpy()
        now = np.take_along_axis(out["input_ids"].numpy(), positions, axis=1)[weights]
        original = out["masked_lm_ids"].numpy()[weights]
        np.testing.assert_array_equal(
            original, np.take_along_axis(batch["input_ids"], positions, axis=1)[weights])
        counts["mask"] += np.sum(now == MASK_ID)
        counts["same"] += np.sum(now == original)
        counts["random"] += np.sum((now != MASK_ID) & (now != original))
        # unselected positions are untouched
        changed = out["input_ids"].numpy() != batch["input_ids"]
        rows = np.repeat(np.arange(len(positions)), MAX_PRED)[weights.ravel()]
        chosen = np.zeros_like(changed)
        chosen[rows, positions[weights]] = True
        assert not (changed & ~chosen).any()
    total = sum(counts.values())
    # A random token equal to the original counts as "same": 0.1 is a lower bound there.
    assert abs(counts["mask"] / total - 0.8) <= 0.03
    assert abs(counts["random"] / total - 0.1) <= 0.03
    assert abs(counts["same"] / total - 0.1) <= 0.03


def test_outputs_layout_and_determinism(batch):
    small = {k: v[:64] for k, v in batch.items()}
    first = mask_batch(small, [5, 0], MAX_PRED)
    again = mask_batch(small, [5, 0], MAX_PRED)
    other = mask_batch(small, [5, 1], MAX_PRED)
    for name in ("input_ids", "masked_lm_positions", "masked_lm_ids", "masked_lm_weights"):
        np.testing.assert_array_equal(first[name].numpy(), again[name].numpy())
    assert (first["masked_lm_positions"].numpy() != other["masked_lm_positions"].numpy()).any()
    positions = first["masked_lm_positions"].numpy()
    weights = first["masked_lm_weights"].numpy()
    assert positions.shape == (64, MAX_PRED) and positions.dtype == np.int32
    assert weights.dtype == np.float32
    for row_positions, row_weights in zip(positions, weights):
        real = row_positions[row_weights > 0]
        assert (np.diff(real) > 0).all() and (row_positions[row_weights == 0] == 0).all()
        # weights are a prefix of ones
        assert (np.diff(row_weights) <= 0).all()


def test_max_predictions_caps_long_sequences():
    arrays, _ = instance_arrays(40, 512, seed=4, min_sentences=30, max_sentences=40)
    out = mask_batch(arrays, [1, 1], 20)
    counts = out["masked_lm_weights"].numpy().sum(axis=1)
    assert counts.max() <= 20 and counts.mean() > 17


def test_no_maskable_tokens():
    ids = np.array([[CLS_ID, SEP_ID, SEP_ID, 0, 0, 0, 0, 0]])
    out = mask_batch({"input_ids": ids, "input_mask": (ids > 0).astype(int),
                      "token_boundary": (ids > 0).astype(int)}, [0, 0], 3)
    assert out["masked_lm_weights"].numpy().sum() == 0
    np.testing.assert_array_equal(out["input_ids"].numpy(), ids)


def test_runs_in_dataset_map_without_py_function(batch):
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(16).enumerate().map(
        lambda i, x: mask_batch(x, tf.stack([tf.constant(3, tf.int64), i]), MAX_PRED),
        num_parallel_calls=2, deterministic=True)
    first = next(iter(dataset))
    assert first["masked_lm_positions"].shape == (16, MAX_PRED)
    graph = tf.function(lambda x: mask_batch(x, [1, 2], MAX_PRED)).get_concrete_function(
        {k: tf.TensorSpec([None, SEQ], tf.int64) for k in batch}).graph
    kinds = {op.type for op in graph.get_operations()}
    assert not kinds & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}


def _rows_from_words(segments_per_row, seq):
    """Padded arrays from rows given as lists of segments, each a list of word lengths
    in pieces: [CLS] words [SEP] words [SEP] ..., first pieces marked in token_boundary."""
    ids = np.zeros([len(segments_per_row), seq], np.int64)
    boundary = np.zeros_like(ids)
    word_of = np.full_like(ids, -1)  # word number of each maskable piece
    for row, segments in enumerate(segments_per_row):
        tokens, starts, words = [CLS_ID], [1], [-1]
        for segment in segments:
            for length in segment:
                number = max(words) + 1
                tokens += list(10 + np.arange(length) + 7 * number)
                starts += [1] + [0] * (length - 1)
                words += [number] * length
            tokens, starts, words = tokens + [SEP_ID], starts + [1], words + [-1]
        assert len(tokens) <= seq
        ids[row, :len(tokens)], boundary[row, :len(tokens)] = tokens, starts
        word_of[row, :len(tokens)] = words
    return {"input_ids": ids, "input_mask": (ids > 0).astype(np.int64),
            "token_boundary": boundary}, word_of


def _check_rows(arrays, word_of, selected, max_predictions, masked_lm_prob=0.15):
    """Every row with maskable pieces: 1..max_predictions predictions, whole words of at
    most max_predictions pieces, or, when every word is longer, the first `budget`
    pieces of one word. Returns the number of fallback rows."""
    fallbacks = 0
    for row in range(len(selected)):
        words = word_of[row]
        sizes = collections.Counter(words[words >= 0].tolist())
        count = selected[row].sum()
        assert not (selected[row] & (words < 0)).any()
        if not sizes:
            assert count == 0
            continue
        assert 1 <= count <= max_predictions, (row, count)
        chosen = set(words[selected[row]].tolist())
        if min(sizes.values()) <= max_predictions:
            for number in chosen:  # whole words that fit
                assert sizes[number] <= max_predictions
                assert selected[row][words == number].all()
        else:
            fallbacks += 1
            budget = min(max_predictions, max(1, round(sum(sizes.values()) * masked_lm_prob)))
            (number,) = chosen
            assert np.flatnonzero(selected[row]).tolist() == (
                np.flatnonzero(words == number)[:budget].tolist())
    return fallbacks


def test_long_words_never_leave_a_row_without_predictions():
    """Regression: with a small vocabulary a word may have more pieces than
    max_predictions. The first span visited, always taken, began with such a word: it
    could not be predicted whole, so it gave nothing, and its size barred every other
    span, leaving rows with many maskable pieces and no prediction."""
    rows = [
        # [CLS] ▁th i r te e n ▁. [SEP] ▁ te n ▁. ▁ el e ve n ▁. ▁tw el ve ▁. [SEP]
        [[6, 1], [3, 1, 5, 1, 3, 1]],
        [[6, 5], [4, 2, 7]],        # one word fits
        [[6, 5], [4, 7]],           # none fits: 22 pieces, budget 3
        [[9]],                      # none fits: budget 1
        [[4], [4]],
        [[], []],                   # no maskable piece
    ]
    arrays, word_of = _rows_from_words([r for r in rows for _ in range(100)], 32)
    selected, span = (t.numpy() for t in select_ngram_spans(
        arrays["input_ids"], arrays["token_boundary"], arrays["input_mask"], [7, 7], 3))
    assert _check_rows(arrays, word_of, selected, 3) == 300
    np.testing.assert_array_equal(span >= 0, selected)
    first = selected[:100]
    assert first.sum(axis=1).min() >= 1
    # the fitting words (▁ te n, ▁tw el ve and the ▁. pieces) are all chosen at times
    chosen = set(word_of[:100][first].tolist())
    assert chosen == {1, 2, 3, 5, 6, 7}
    assert (selected[100:200].sum(axis=1) == 2).all()  # only the 2-piece word fits
    out = mask_batch(arrays, [7, 8], 3)
    weights = out["masked_lm_weights"].numpy().sum(axis=1)
    np.testing.assert_array_equal(weights[:500] >= 1, True)
    np.testing.assert_array_equal(weights[500:], 0)


@pytest.mark.parametrize("max_predictions", [1, 2, 3, 5])
def test_every_row_with_maskable_pieces_gets_predictions(max_predictions):
    rng = np.random.default_rng(max_predictions)
    rows = []
    for _ in range(600):
        segments, room = [], int(rng.integers(3, 63))  # sequences of varied lengths
        for _ in range(int(rng.integers(1, 3))):
            segment = []
            while room > 1 and rng.random() < 0.85:
                # word lengths 1-8 pieces; some rows only long words
                low = max_predictions + 1 if len(rows) % 5 == 0 else 1
                length = int(min(rng.integers(low, 9), room - 1))
                segment.append(length)
                room -= length
            segments.append(segment)
            room -= 1
        rows.append(segments)
    arrays, word_of = _rows_from_words(rows, 64)
    total_fallbacks = 0
    for seed in range(3):
        selected, _ = (t.numpy() for t in select_ngram_spans(
            arrays["input_ids"], arrays["token_boundary"], arrays["input_mask"],
            [seed, max_predictions], max_predictions))
        total_fallbacks += _check_rows(arrays, word_of, selected, max_predictions)
    assert total_fallbacks > 0
    out = mask_batch(arrays, [9, max_predictions], max_predictions)
    weights = out["masked_lm_weights"].numpy().sum(axis=1)
    has_maskable = (word_of >= 0).any(axis=1)
    assert (weights[has_maskable] >= 1).all() and (weights <= max_predictions).all()
    assert (weights[~has_maskable] == 0).all()


def _replacements(out, batch):
    weights = out["masked_lm_weights"].numpy() > 0
    positions = out["masked_lm_positions"].numpy()
    now = np.take_along_axis(out["input_ids"].numpy(), positions, axis=1)[weights]
    original = out["masked_lm_ids"].numpy()[weights]
    return now[(now != MASK_ID) & (now != original)]


def test_random_replacements_uniform_over_vocabulary(batch):
    vocab_size = 1000  # beyond the tiny model's pieces: draws need not occur in the batch
    drawn = np.concatenate([
        _replacements(mask_batch(batch, [seed, 3], MAX_PRED, vocab_size=vocab_size), batch)
        for seed in range(4)])
    assert len(drawn) > 2000
    assert drawn.min() >= 5 and drawn.max() < vocab_size  # never a special piece
    counts, _ = np.histogram(drawn, bins=10, range=(5, vocab_size))
    expected = len(drawn) / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9, counts  # p = 0.001 with 9 degrees of freedom
    assert not np.isin(drawn, batch["input_ids"]).all()
    # Without vocab_size they come from the batch's own maskable tokens.
    own = _replacements(mask_batch(batch, [0, 3], MAX_PRED), batch)
    assert len(own) and np.isin(own, batch["input_ids"]).all() and own.min() > MASK_ID
    # Same seed, same masks: only the replacement tokens differ.
    a = mask_batch(batch, [0, 3], MAX_PRED)
    b = mask_batch(batch, [0, 3], MAX_PRED, vocab_size=vocab_size)
    np.testing.assert_array_equal(a["masked_lm_positions"], b["masked_lm_positions"])
    with pytest.raises(ValueError, match="vocab_size=5"):
        mask_batch(batch, [0, 3], MAX_PRED, vocab_size=5)


def test_sentencepiece_word_starts_follow_the_reference():
    """The reference _is_start_piece_sp: a piece with any character outside English
    letters and ASCII punctuation is a word of its own (Chinese pieces, digits, accents);
    English continuations are not."""
    from albert_keras.special_tokens import is_word_start_piece

    starts = ["▁the", "<unk>", "[CLS]", ",", "€", "北京", "的", "12", "é", "x2", "▁"]
    continues = ["ing", "able", "a-b", "x", "s'"]
    assert all(is_word_start_piece(p) for p in starts)
    assert not any(is_word_start_piece(p) for p in continues)
