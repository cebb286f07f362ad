"""The fused XLA kernels (fused_ops) against independent computations: numpy formulas
for values, TensorFlow's autodiff of the plain ops for gradients, and whole encoders
run both ways."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from albert_keras import AlbertPretrainer
from albert_keras.layers import SharedEncoder, fused_ops
from albert_keras.layers.shared_gradients import cast_once_for_uses
from albert_keras.layers.fused_ops import sparse_softmax_cross_entropy
from albert_keras.optimization import create_optimizer
from model_harness import pretraining_batch, small_config

RNG = np.random.default_rng(0)


def gradients(fn, inputs, upstream):
    """Values and d(sum(fn(*inputs) * upstream))/d inputs."""
    inputs = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = fn(*inputs)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * upstream)
    return out.numpy(), [None if g is None else g.numpy() for g in tape.gradient(loss, inputs)]


def gelu_reference(y, activation):
    y = y.astype(np.float64)
    if activation == "gelu_tanh":
        return 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y ** 3)))
    return 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))


@pytest.mark.parametrize("activation", ["gelu_tanh", "gelu_erf"])
def test_bias_activation_values_and_gradients(activation):
    h = RNG.normal(size=(6, 5, 16)).astype("float32") * 2
    bias = RNG.normal(size=(16,)).astype("float32")
    upstream = RNG.normal(size=(6, 5, 16)).astype("float32")
    for mode in ("xla", "plain"):
        value, grads = gradients(
            lambda a, b: fused_ops.bias_activation(a, b, activation, mode),
            [h, bias], upstream)
        np.testing.assert_allclose(value, gelu_reference(h + bias, activation), atol=2e-6)
        if mode == "xla":
            fused = grads
    # The hand-written gradient against TensorFlow's autodiff of the plain ops.
    for got, expected in zip(fused, grads):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def layer_norm_reference(x, y, bias, gamma, beta, eps):
    h = (x + y + bias).astype(np.float64)
    mean = h.mean(-1, keepdims=True)
    var = ((h - mean) ** 2).mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(var + eps) * gamma + beta


def test_residual_layer_norm_values_and_gradients():
    x, y = (RNG.normal(size=(4, 7, 24)).astype("float32") for _ in range(2))
    bias, gamma, beta = (RNG.normal(size=(24,)).astype("float32") for _ in range(3))
    upstream = RNG.normal(size=(4, 7, 24)).astype("float32")
    results = {}
    for mode in ("xla", "plain"):
        results[mode] = gradients(
            lambda *a: fused_ops.residual_layer_norm(*a, 1e-6, mode),
            [x, y, bias, gamma, beta], upstream)
        np.testing.assert_allclose(results[mode][0],
                                   layer_norm_reference(x, y, bias, gamma, beta, 1e-6),
                                   atol=2e-5)
    for got, expected in zip(results["xla"][1], results["plain"][1]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_row_statistics_by_matvec_equal_reductions():
    # The "xla_cpu" kernels take last-axis sums as products with a ones vector; both
    # forms of the LayerNorm kernel must give the same values and gradients.
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    assert fused_ops.fusion_for_this_host() == ("xla" if accelerators else "xla_cpu")
    rows = tf.constant(RNG.normal(size=(3, 9, 768)).astype("float32") * 4 + 2)
    np.testing.assert_allclose(fused_ops.last_axis_sum(rows, by_matvec=True),
                               tf.reduce_sum(rows, axis=-1, keepdims=True), rtol=1e-5)
    x, y, upstream = (RNG.normal(size=(2, 5, 64)).astype("float32") for _ in range(3))
    bias, gamma, beta = (RNG.normal(size=(64,)).astype("float32") for _ in range(3))
    results = [gradients(fused_ops._residual_layer_norm_kernel(1e-6, by_matvec),
                         [x, y, bias, gamma, beta], upstream) for by_matvec in (True, False)]
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-5)
    np.testing.assert_allclose(results[0][0], layer_norm_reference(x, y, bias, gamma, beta, 1e-6),
                               atol=2e-5)
    for got, expected in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_kernels_trace_with_a_dynamic_sequence_length():
    # Batches padded to their longest sequence leave the key axis unknown when traced.
    scores = RNG.normal(size=(2, 3, 5, 5)).astype("float32")
    mask_bias = np.zeros((2, 1, 1, 5), "float32")

    @tf.function(input_signature=[tf.TensorSpec([None, 3, None, None]),
                                  tf.TensorSpec([None, 1, 1, None])])
    def softmax(s, b):
        with tf.GradientTape() as tape:
            tape.watch(s)
            probs = fused_ops.masked_softmax(s * 0.5, b, "xla_cpu")
            loss = tf.reduce_sum(probs * s)
        return probs, tape.gradient(loss, s)

    probs, grad = softmax(scores, mask_bias)
    expected = tf.nn.softmax(scores * 0.5, axis=-1)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    with tf.GradientTape() as tape:
        s = tf.constant(scores)
        tape.watch(s)
        loss = tf.reduce_sum(tf.nn.softmax(s * 0.5, axis=-1) * s)
    np.testing.assert_allclose(grad, tape.gradient(loss, s), atol=1e-5)


def test_masked_softmax_values_and_gradients():
    scores = RNG.normal(size=(2, 3, 5, 5)).astype("float32") * 3
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "float32")
    mask_bias = ((1 - mask) * -1e9)[:, None, None, :]
    upstream = RNG.normal(size=scores.shape).astype("float32")
    scale = 0.125
    value, (fused_grad, _) = gradients(
        lambda s, b: fused_ops.masked_softmax(s * scale, b, "xla"),
        [scores, mask_bias], upstream)
    logits = scores * scale + mask_bias
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(value, expected, atol=1e-6)
    assert np.all(value[0, :, :, 3:] == 0)  # padded keys get nothing
    plain_value, (plain_grad, _) = gradients(
        lambda s, b: fused_ops.masked_softmax(s * scale, b, "plain"), [scores, mask_bias],
        upstream)
    np.testing.assert_allclose(plain_value, value, atol=1e-6)
    np.testing.assert_allclose(fused_grad, plain_grad, atol=1e-6)


def test_cast_once_for_uses_sums_gradients_in_float32():
    kernel = tf.constant(RNG.normal(size=(8, 8)).astype("float32"))
    # Upstream gradients whose bfloat16 sum would round away the small ones.
    upstreams = [tf.constant(np.full((8, 8), v, "float32"), tf.bfloat16)
                 for v in (256.0, 0.5, 0.5, 0.5)]
    for mode in ("xla", "plain"):
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            copies = cast_once_for_uses(kernel, tf.bfloat16, 4, mode)
            loss = tf.add_n([tf.reduce_sum(tf.cast(c * u, tf.float32))
                             for c, u in zip(copies, upstreams)])
        assert all(c.dtype == tf.bfloat16 for c in copies)
        np.testing.assert_array_equal(copies[0].numpy(), tf.cast(kernel, tf.bfloat16).numpy())
        grad = tape.gradient(loss, kernel).numpy()
        assert grad.dtype == np.float32
        np.testing.assert_array_equal(grad, np.full((8, 8), 257.5, "float32"))


def encoder_outputs_and_grads(policy, mode, sharing="all"):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(7)
    encoder = SharedEncoder(num_layers=4, hidden_size=32, num_attention_heads=4,
                            intermediate_size=48, num_groups=2, inner_group_num=2,
                            sharing=sharing, fusion=mode)
    x = tf.constant(np.random.default_rng(5).normal(size=(3, 9, 32)).astype("float32"))
    mask = tf.constant(np.array([[1] * 9, [1] * 5 + [0] * 4, [1] * 2 + [0] * 7], "int32"))
    encoder.build(x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.cast(encoder(x, mask, training=True), tf.float32)
        loss = tf.reduce_sum(out * tf.sin(tf.range(32, dtype=tf.float32)))
    grads = tape.gradient(loss, [x] + encoder.trainable_variables)
    return out.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("sharing", ["all", "ffn"])
def test_encoder_xla_kernels_match_plain_ones(sharing):
    """Whole encoder, float32: every output and every weight gradient the same both ways
    (shared weights used 4 times, unshared once)."""
    out_xla, grads_xla = encoder_outputs_and_grads("float32", "xla", sharing)
    out_plain, grads_plain = encoder_outputs_and_grads("float32", "plain", sharing)
    np.testing.assert_allclose(out_xla, out_plain, atol=1e-5)
    assert len(grads_xla) == len(grads_plain)
    for got, expected in zip(grads_xla, grads_plain):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_encoder_bfloat16_follows_float32():
    out_32, grads_32 = encoder_outputs_and_grads("float32", "plain")
    out_16, grads_16 = encoder_outputs_and_grads("mixed_bfloat16", "xla")
    assert np.max(np.abs(out_16 - out_32)) < 0.1
    # Relative to the largest gradient: some are exactly zero in exact arithmetic (the
    # key bias shifts every score of a row equally, which softmax ignores).
    scale = max(np.max(np.abs(g)) for g in grads_32)
    for got, expected in zip(grads_16, grads_32):
        assert np.max(np.abs(got - expected)) / scale < 0.05


def test_sparse_softmax_cross_entropy_values_and_gradients():
    logits = (RNG.normal(size=(3, 4, 50)) * 4).astype("float32")
    labels = RNG.integers(0, 50, size=(3, 4)).astype("int32")
    upstream = RNG.normal(size=(3, 4)).astype("float32")
    log_probs = logits.astype(np.float64) - np.log(
        np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    results = {}
    for mode in ("xla", "plain"):
        results[mode] = gradients(
            lambda lg: sparse_softmax_cross_entropy(labels, lg, mode),
            [logits], upstream)
        assert results[mode][0].shape == (3, 4)
        np.testing.assert_allclose(results[mode][0], expected, rtol=1e-5, atol=1e-5)
    # Hand-written gradient against TensorFlow's op; and (softmax - onehot) * upstream.
    np.testing.assert_allclose(results["xla"][1][0], results["plain"][1][0], atol=1e-6)
    softmax = np.exp(log_probs)
    onehot = np.eye(50)[labels]
    np.testing.assert_allclose(results["xla"][1][0], (softmax - onehot) * upstream[..., None],
                               atol=1e-6)
    bad = sparse_softmax_cross_entropy(np.array([1, 50, -1], "int32"), logits[0, :3],
                                       "xla").numpy()
    assert np.isfinite(bad[0]) and np.isnan(bad[1:]).all()


def test_kernel_choice_is_validated_and_auto_resolves_to_this_host():
    from albert_keras import AlbertConfig
    with pytest.raises(ValueError, match="fusion 'fast' is unknown; use one of plain, xla"):
        AlbertConfig(fusion="fast")
    with pytest.raises(ValueError, match="fusion"):
        fused_ops.masked_softmax(tf.zeros((1, 1, 2, 2)), tf.zeros((1, 1, 1, 2)), "fast")
    assert fused_ops.resolve_fusion("auto") == fused_ops.fusion_for_this_host()
    assert fused_ops.resolve_fusion("plain") == "plain"


def test_training_step_is_the_same_with_either_fusion():
    """One LAMB step of a small pretrainer: same loss and same new weights."""
    results = {}
    for mode in ("xla", "plain"):
        keras.utils.set_random_seed(3)
        config = small_config(fusion=mode)
        model = AlbertPretrainer(config)
        model.compile(optimizer=create_optimizer("lamb", total_steps=10, warmup_steps=0,
                                                 fusion=mode))
        batch = pretraining_batch(config, batch=4, seq=16)
        logs = model.train_on_batch(batch, return_dict=True)
        results[mode] = (logs["loss"], [w.numpy() for w in model.trainable_weights])
    assert results["xla"][0] == pytest.approx(results["plain"][0], rel=1e-5)
    for got, expected in zip(results["xla"][1], results["plain"][1]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_dropout_applies_in_training_with_fused_kernels():
    """hidden and attention dropout still act in training calls (the bias moves out of
    the fused LayerNorm so that dropout comes after it, as in the reference)."""
    encoder = SharedEncoder(num_layers=2, hidden_size=16, num_attention_heads=2,
                            intermediate_size=24, hidden_dropout=0.3, attention_dropout=0.3,
                            fusion="xla")
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 6, 16)).astype("float32"))
    mask = tf.ones((2, 6), tf.int32)
    inference = encoder(x, mask, training=False).numpy()
    np.testing.assert_array_equal(inference, encoder(x, mask, training=False).numpy())
    trained = [encoder(x, mask, training=True).numpy() for _ in range(2)]
    assert np.all(np.isfinite(trained[0]))
    assert np.max(np.abs(trained[0] - trained[1])) > 1e-3
    assert np.max(np.abs(trained[0] - inference)) > 1e-3
