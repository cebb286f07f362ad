import collections

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.data.masking import mask_batch, ngram_probabilities, select_ngram_spans
from albert_keras.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID
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
