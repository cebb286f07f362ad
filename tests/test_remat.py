"""Rematerialization (config remat "block"): the same outputs, loss and gradients as a
model that keeps every activation; with dropout, the recomputed blocks draw the masks of
their first pass. Memory and time: benchmarks/remat_memory.py."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import keras

from albert_keras import AlbertConfig, AlbertPretrainer
from albert_keras.layers import SharedEncoder

SEQ = 12
CONFIG = AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=3,
                      num_attention_heads=2, intermediate_size=24, max_position_embeddings=SEQ)


def batch(size=4, seed=0):
    rng = np.random.default_rng(seed)
    mask = (np.arange(SEQ)[None, :] < rng.integers(6, SEQ + 1, (size, 1))).astype("int32")
    return {"input_ids": (rng.integers(5, 50, (size, SEQ)) * mask).astype("int32"),
            "segment_ids": np.zeros((size, SEQ), "int32"), "input_mask": mask,
            "masked_lm_positions": rng.integers(1, 6, (size, 3)).astype("int32"),
            "masked_lm_ids": rng.integers(5, 50, (size, 3)).astype("int32"),
            "masked_lm_weights": np.ones((size, 3), "float32"),
            "next_sentence_labels": rng.integers(0, 2, (size, 1)).astype("int32")}


def loss_and_gradients(model, data):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            outputs = model(data, training=True)
            loss = model.compute_loss(x=data, y_pred=outputs)
        return outputs, loss, tape.gradient(loss, model.trainable_weights)
    outputs, loss, gradients = step()
    return outputs, float(loss), [tf.convert_to_tensor(g).numpy() for g in gradients]


@pytest.mark.parametrize("fusion", ["plain", "xla_cpu"])
def test_remat_block_gives_the_outputs_and_gradients_of_the_plain_run(fusion):
    keras.utils.set_random_seed(1)
    config = dataclasses.replace(CONFIG, fusion=fusion)
    plain = AlbertPretrainer(config)
    remat = AlbertPretrainer(dataclasses.replace(config, remat="block"))
    remat.set_weights(plain.get_weights())
    data = batch()
    plain_out, plain_loss, plain_grads = loss_and_gradients(plain, data)
    remat_out, remat_loss, remat_grads = loss_and_gradients(remat, data)
    assert remat_loss == pytest.approx(plain_loss, rel=1e-6)
    for name in plain_out:
        np.testing.assert_allclose(remat_out[name], plain_out[name], atol=1e-6)
    assert len(remat_grads) == len(plain_grads)
    for weight, a, b in zip(plain.trainable_weights, remat_grads, plain_grads):
        np.testing.assert_allclose(a, b, atol=1e-6, err_msg=weight.path)


def test_recomputed_blocks_draw_the_dropout_masks_of_their_first_pass(monkeypatch):
    """With dropout, remat's gradients equal those of the same forward pass (the same
    seeds) differentiated without recomputation."""
    keras.utils.set_random_seed(2)
    encoder = SharedEncoder(3, 16, 2, 24, hidden_dropout=0.3, attention_dropout=0.3,
                            remat="block")
    x = tf.random.normal((2, SEQ, 16), seed=3)
    mask = tf.constant(batch(2)["input_mask"])
    encoder(x, mask)  # builds
    weights = encoder.trainable_weights
    start = encoder._remat_seeds.state.numpy()

    def gradients():
        encoder._remat_seeds.state.assign(start)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = encoder(x, mask, training=True)
            loss = tf.reduce_sum(out * tf.sin(tf.range(16, dtype=tf.float32)))
        return out.numpy(), [g.numpy() for g in tape.gradient(loss, [x] + weights)]

    out, remat = gradients()
    monkeypatch.setattr(tf, "recompute_grad", lambda f: f)  # keep every activation
    kept_out, kept = gradients()
    np.testing.assert_allclose(out, kept_out, atol=1e-6)
    for a, b in zip(remat, kept):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Dropout acted: the same call without training differs.
    assert np.abs(encoder(x, mask, training=False).numpy() - out).max() > 1e-2


def test_remat_is_in_the_config_and_checked():
    encoder = SharedEncoder(2, 16, 2, 24, remat="block")
    assert encoder.get_config()["remat"] == "block"
    assert SharedEncoder.from_config(encoder.get_config()).remat == "block"
    assert encoder._remat_seeds is None  # no dropout, no seeds
    with pytest.raises(ValueError, match="remat 'layers' is unknown; use one of none, block"):
        SharedEncoder(2, 16, 2, 24, remat="layers")
    with pytest.raises(ValueError, match="AlbertConfig.remat"):
        dataclasses.replace(CONFIG, remat="all")


@pytest.mark.parametrize("fusion", ["plain", "xla_cpu"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_chained_uses_sum_the_gradients_of_every_use_in_float32(fusion, dtype):
    """cast_in_chain_for_uses (remat "block") gives each use the one cast and the kernel
    the float32 sum of all uses' gradients, as cast_once_for_uses does."""
    from albert_keras.layers.shared_gradients import cast_in_chain_for_uses, cast_once_for_uses

    kernel = tf.Variable(tf.random.normal((8, 6), seed=4))
    upstream = [tf.cast(tf.random.normal((8, 6), seed=10 + i), dtype) for i in range(5)]

    def gradient(make_copies):
        with tf.GradientTape() as tape:
            copies = make_copies(kernel, dtype, 5, fusion)
            loss = tf.add_n([tf.reduce_sum(tf.cast(c * u, tf.float32))
                             for c, u in zip(copies, upstream)])
        for copy in copies:
            assert copy.dtype == tf.as_dtype(dtype)
            np.testing.assert_array_equal(copy.numpy(), tf.cast(kernel, dtype).numpy())
        return tape.gradient(loss, kernel).numpy()

    expected = np.sum([u.numpy().astype("float32") for u in upstream], axis=0)
    np.testing.assert_allclose(gradient(cast_in_chain_for_uses), expected, rtol=1e-6)
    np.testing.assert_allclose(gradient(cast_in_chain_for_uses), gradient(cast_once_for_uses),
                               rtol=1e-6)
