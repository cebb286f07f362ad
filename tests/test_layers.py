"""Layers checked against hand-written numpy, and round-tripped through .keras."""

import math

import numpy as np
import pytest

import keras

from albert_keras.layers import (FactorizedEmbedding, FeedForward, MaskedLMHead, Pooler,
                                 SelfAttention, SentenceOrderHead, SharedEncoder,
                                 TransformerBlock)
from model_harness import assert_keras_round_trip


def layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def randomize(layer, seed=0):
    """Non-trivial weights (LayerNorm gammas and biases too)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))


def numpy_attention(x, mask, layer):
    q = x @ layer.query.kernel.numpy() + layer.query.bias.numpy()
    k = x @ layer.key.kernel.numpy() + layer.key.bias.numpy()
    v = x @ layer.value.kernel.numpy() + layer.value.bias.numpy()
    b, s, h = x.shape
    n, d = layer.num_attention_heads, h // layer.num_attention_heads
    q, k, v = (t.reshape(b, s, n, d).transpose(0, 2, 1, 3) for t in (q, k, v))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + (1 - mask[:, None, None, :]) * -1e4
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
    out = context @ layer.output_dense.kernel.numpy() + layer.output_dense.bias.numpy()
    return layer_norm(x + out, layer.layer_norm.gamma.numpy(), layer.layer_norm.beta.numpy())


def test_factorized_embedding_matches_numpy(tmp_path):
    layer = FactorizedEmbedding(50, 8, 12, type_vocab_size=2, max_position_embeddings=20)
    ids = np.array([[2, 7, 9, 3, 0], [2, 11, 3, 4, 3]], "int32")
    segments = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], "int32")
    layer(ids, segments)
    randomize(layer)
    summed = (layer.word_embeddings.numpy()[ids] + layer.token_type_embeddings.numpy()[segments]
              + layer.position_embeddings.numpy()[:5])
    normed = layer_norm(summed, layer.layer_norm.gamma.numpy(), layer.layer_norm.beta.numpy())
    expected = normed @ layer.projection.kernel.numpy() + layer.projection.bias.numpy()
    np.testing.assert_allclose(layer(ids, segments).numpy(), expected, atol=1e-5)
    assert layer.count_params() == 50 * 8 + 2 * 8 + 20 * 8 + 2 * 8 + 8 * 12 + 12

    ids_in = keras.Input((None,), dtype="int32")
    seg_in = keras.Input((None,), dtype="int32")
    model = keras.Model([ids_in, seg_in], layer(ids_in, seg_in))
    assert_keras_round_trip(model, [ids, segments], tmp_path)


def test_words_first_embedding_matches_numpy(tmp_path):
    """brightmart/albert_zh's order: project the word rows (no bias), then add H-wide
    position and token-type embeddings and LayerNorm at H; the tied MLM output goes
    back through the transposed projection."""
    layer = FactorizedEmbedding(50, 8, 12, type_vocab_size=2, max_position_embeddings=20,
                                projection="words_first")
    ids = np.array([[2, 7, 9, 3, 0], [2, 11, 3, 4, 3]], "int32")
    segments = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], "int32")
    layer(ids, segments)
    randomize(layer)
    words = layer.word_embeddings.numpy()[ids] @ layer.projection.kernel.numpy()
    summed = (words + layer.token_type_embeddings.numpy()[segments]
              + layer.position_embeddings.numpy()[:5])
    expected = layer_norm(summed, layer.layer_norm.gamma.numpy(), layer.layer_norm.beta.numpy())
    np.testing.assert_allclose(layer(ids, segments).numpy(), expected, atol=1e-5)
    assert layer.mlm_width == 12
    assert layer.count_params() == 50 * 8 + 8 * 12 + 2 * 12 + 20 * 12 + 2 * 12
    hidden = np.random.default_rng(0).normal(size=(3, 12)).astype("float32")
    np.testing.assert_allclose(
        layer.project_to_vocab(hidden).numpy(),
        hidden @ layer.projection.kernel.numpy().T @ layer.word_embeddings.numpy().T,
        rtol=1e-5, atol=1e-5)

    ids_in = keras.Input((None,), dtype="int32")
    seg_in = keras.Input((None,), dtype="int32")
    model = keras.Model([ids_in, seg_in], layer(ids_in, seg_in))
    assert_keras_round_trip(model, [ids, segments], tmp_path)


def test_self_attention_matches_numpy_and_ignores_padding():
    layer = SelfAttention(16, 4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], "float32")
    layer(x, mask)
    randomize(layer)
    out = layer(x, mask).numpy()
    np.testing.assert_allclose(out, numpy_attention(x, mask, layer), atol=1e-4)
    # Changing what sits at padded positions must not move the real positions.
    x2 = x.copy()
    x2[1, 4:] = 100.0
    out2 = layer(x2, mask).numpy()
    np.testing.assert_allclose(out2[1, :4], out[1, :4], atol=1e-5)


def test_feed_forward_matches_numpy():
    layer = FeedForward(8, 20, activation="gelu_tanh")
    x = np.random.default_rng(2).normal(size=(2, 3, 8)).astype("float32")
    layer(x)
    randomize(layer)
    hidden = gelu_tanh(x @ layer.intermediate.kernel.numpy() + layer.intermediate.bias.numpy())
    out = hidden @ layer.output_dense.kernel.numpy() + layer.output_dense.bias.numpy()
    expected = layer_norm(x + out, layer.layer_norm.gamma.numpy(), layer.layer_norm.beta.numpy())
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-4)


def block_params(h, i):
    attention = 4 * (h * h + h) + 2 * h
    ffn = (h * i + i) + (i * h + h) + 2 * h
    return attention, ffn


@pytest.mark.parametrize("sharing,attention_owners,ffn_owners", [
    ("all", 2 * 2, 2 * 2), ("attention", 2 * 2, 6 * 2), ("ffn", 6 * 2, 2 * 2),
    ("none", 6 * 2, 6 * 2)])
def test_sharing_modes_count_exactly_what_they_keep(sharing, attention_owners, ffn_owners):
    encoder = SharedEncoder(6, 16, 4, 24, num_groups=2, inner_group_num=2, sharing=sharing)
    encoder(np.zeros((1, 3, 16), "float32"), np.ones((1, 3), "int32"))
    assert len(encoder.attention_layers) == attention_owners
    assert len(encoder.feed_forward_layers) == ffn_owners
    attention, ffn = block_params(16, 24)
    assert encoder.count_params() == attention_owners * attention + ffn_owners * ffn


def test_group_schedule_follows_the_reference():
    encoder = SharedEncoder(6, 16, 4, 24, num_groups=3, inner_group_num=2)
    # Layer i uses group floor(i * G / L); inner block k of that group.
    assert [encoder.attention_index(i, k) for i in range(6) for k in range(2)] == [
        0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5]
    none = SharedEncoder(6, 16, 4, 24, num_groups=3, inner_group_num=2, sharing="none")
    assert [none.feed_forward_index(i, 1) for i in range(6)] == [1, 3, 5, 7, 9, 11]
    # The converters' unit: group G's inner block K, the sub-layers its layers run.
    for layer_index in range(6):
        group = layer_index * 3 // 6
        for inner in range(2):
            attention, feed_forward = encoder.group_sublayers(group, inner)
            assert attention is encoder.attention_layers[
                encoder.attention_index(layer_index, inner)]
            assert feed_forward is encoder.feed_forward_layers[
                encoder.feed_forward_index(layer_index, inner)]
    with pytest.raises(ValueError, match="sharing 'all'"):
        none.group_sublayers(0)


def test_fully_shared_encoder_applies_one_block_repeatedly():
    encoder = SharedEncoder(3, 16, 4, 24)
    x = np.random.default_rng(3).normal(size=(2, 5, 16)).astype("float32")
    mask = np.ones((2, 5), "int32")
    states = encoder(x, mask, return_all_layers=True)
    assert len(states) == 4 and len(encoder.blocks) == 1
    manual = x
    for _ in range(3):
        manual = encoder.blocks[0](manual, mask)
    np.testing.assert_allclose(states[-1].numpy(), manual.numpy(), atol=1e-6)
    np.testing.assert_allclose(states[0], x)


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
def test_shared_encoder_round_trip(tmp_path, sharing):
    x_in = keras.Input((None, 16))
    m_in = keras.Input((None,), dtype="int32")
    encoder = SharedEncoder(4, 16, 4, 24, num_groups=2, inner_group_num=2, sharing=sharing)
    model = keras.Model([x_in, m_in], encoder(x_in, m_in))
    x = np.random.default_rng(4).normal(size=(2, 5, 16)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    restored = assert_keras_round_trip(model, [x, mask], tmp_path, atol=1e-5)
    assert len(restored.layers[-1].attention_layers) == len(encoder.attention_layers)


def test_transformer_block_round_trip(tmp_path):
    x_in = keras.Input((None, 16))
    m_in = keras.Input((None,), dtype="int32")
    model = keras.Model([x_in, m_in], TransformerBlock(16, 4, 24)(x_in, m_in))
    x = np.random.default_rng(5).normal(size=(2, 5, 16)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    assert_keras_round_trip(model, [x, mask], tmp_path, atol=1e-5)


def test_masked_lm_head_gathers_and_ties_output(tmp_path):
    embedding = FactorizedEmbedding(30, 8, 16)
    head = MaskedLMHead(embedding)
    seq = np.random.default_rng(6).normal(size=(2, 7, 16)).astype("float32")
    positions = np.array([[1, 4, 6], [0, 0, 2]], "int32")
    embedding(np.zeros((1, 2), "int32"), np.zeros((1, 2), "int32"))
    head(seq, positions)
    randomize(head, seed=7)
    gathered = np.take_along_axis(seq, positions[..., None], axis=1)
    x = gelu_tanh(gathered @ head.dense.kernel.numpy() + head.dense.bias.numpy())
    x = layer_norm(x, head.layer_norm.gamma.numpy(), head.layer_norm.beta.numpy())
    expected = x @ embedding.word_embeddings.numpy().T + head.output_bias.numpy()
    logits = head(seq, positions)
    assert logits.dtype == "float32" and logits.shape == (2, 3, 30)
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-4)
    # Tied: the head owns only dense, LayerNorm and bias; the word matrix is the embedding's.
    assert any(w is embedding.word_embeddings for w in head.weights)
    seq_in = keras.Input((None, 16))
    pos_in = keras.Input((None,), dtype="int32")
    model = keras.Model([seq_in, pos_in], head(seq_in, pos_in))
    assert_keras_round_trip(model, [seq, positions], tmp_path, atol=1e-5)


def test_pooler_and_sentence_order_head(tmp_path):
    seq = np.random.default_rng(8).normal(size=(2, 5, 16)).astype("float32")
    pooler = Pooler(16)
    pooled = pooler(seq).numpy()
    expected = np.tanh(seq[:, 0] @ pooler.dense.kernel.numpy() + pooler.dense.bias.numpy())
    np.testing.assert_allclose(pooled, expected, atol=1e-5)
    sop = SentenceOrderHead(dropout=0.1)
    logits = sop(pooled)
    np.testing.assert_allclose(logits.numpy(), pooled @ sop.dense.kernel.numpy(), atol=1e-5)
    inp = keras.Input((None, 16))
    model = keras.Model(inp, SentenceOrderHead()(Pooler(16)(inp)))
    assert_keras_round_trip(model, seq, tmp_path)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_layers_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    encoder = SharedEncoder(2, 16, 4, 24)
    x = np.random.default_rng(9).normal(size=(2, 5, 16)).astype("float32")
    out = encoder(x, np.array([[1] * 5, [1, 1, 0, 0, 0]], "int32"))
    assert out.dtype == policy.split("_")[1]
    assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))).all()
    for w in encoder.weights:
        assert w.dtype == "float32"  # variables stay float32


def _attention_spec_then_layer_norm(layer, x, mask, dropout=None):
    """The spec (encoder.multi_head_attention) and the residual LayerNorm, in TF."""
    import tensorflow as tf
    from albert_keras.layers.attention import multi_head_attention
    out = multi_head_attention(x, mask, layer.weights_by_role(), layer.num_attention_heads,
                               dropout=dropout)
    h = x + out
    mean = tf.reduce_mean(h, -1, keepdims=True)
    var = tf.reduce_mean(tf.square(h - mean), -1, keepdims=True)
    return (h - mean) * tf.math.rsqrt(var + layer.layer_norm_eps) * layer.layer_norm.gamma \
        + layer.layer_norm.beta


def test_attention_spec_matches_numpy():
    import tensorflow as tf
    layer = SelfAttention(16, 4)
    layer.build((None, None, 16))
    randomize(layer, seed=3)
    x = np.random.default_rng(4).normal(size=(2, 5, 16)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    spec = _attention_spec_then_layer_norm(layer, tf.constant(x), mask)
    np.testing.assert_allclose(spec.numpy(), numpy_attention(x, mask, layer), atol=1e-4)


@pytest.mark.parametrize("fusion", ["plain", "xla", "xla_cpu"])
def test_attention_fast_path_matches_the_spec_in_values_and_gradients(fusion):
    """SelfAttention.call against multi_head_attention + LayerNorm, with large random
    biases (the key bias shifts every score of a row equally) and padding."""
    import tensorflow as tf
    layer = SelfAttention(32, 4, fusion=fusion)
    layer.build((None, None, 32))
    randomize(layer, seed=5)
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(3, 7, 32)).astype("float32"))
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6], "int32")
    upstream = tf.constant(rng.normal(size=(3, 7, 32)).astype("float32"))
    results = []
    for compute in (lambda: layer(x, mask, training=True),
                    lambda: _attention_spec_then_layer_norm(layer, x, mask)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = compute()
            loss = tf.reduce_sum(out * upstream)
        results.append((out.numpy(), tape.gradient(loss, [x] + layer.trainable_weights)))
    (fast, fast_grads), (spec, spec_grads) = results
    np.testing.assert_allclose(fast, spec, atol=2e-5)
    assert len(fast_grads) == len(spec_grads) == 1 + 10
    for got, want in zip(fast_grads, spec_grads):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-4, rtol=1e-4)


def test_attention_fast_path_matches_the_spec_with_dropped_probabilities():
    """With dropout on the probabilities their rows no longer sum to 1, so the value
    bias must go through them: the same fixed "dropout" mask in both computations."""
    import tensorflow as tf
    layer = SelfAttention(16, 4, attention_dropout=0.3)
    layer.build((None, None, 16))
    randomize(layer, seed=9)
    rng = np.random.default_rng(10)
    x = tf.constant(rng.normal(size=(2, 5, 16)).astype("float32"))
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    keep = tf.constant((rng.random((2, 4, 5, 5)) > 0.3).astype("float32") / 0.7)
    layer.attention_dropout = lambda probs, training=None: probs * keep
    fast = layer(x, mask, training=True)
    spec = _attention_spec_then_layer_norm(layer, x, mask, dropout=lambda p: p * keep)
    np.testing.assert_allclose(fast.numpy(), spec.numpy(), atol=2e-5)


@pytest.mark.parametrize("fusion", ["plain", "xla_cpu"])
def test_kernel_choice_is_held_and_serialized(tmp_path, fusion):
    encoder = SharedEncoder(2, 16, 4, 24, sharing="ffn", fusion=fusion)
    assert encoder.get_config()["fusion"] == fusion
    assert {layer.fusion for layer in encoder.attention_layers + encoder.feed_forward_layers
            + encoder.blocks} == {fusion}
    x_in, m_in = keras.Input((None, 16)), keras.Input((None,), dtype="int32")
    model = keras.Model([x_in, m_in], encoder(x_in, m_in))
    x = np.random.default_rng(8).normal(size=(2, 5, 16)).astype("float32")
    restored = assert_keras_round_trip(model, [x, np.ones((2, 5), "int32")], tmp_path,
                                       atol=1e-5)
    assert restored.layers[-1].fusion == fusion
    with pytest.raises(ValueError, match="fusion 'auto' is unknown"):
        SharedEncoder(2, 16, 4, 24, fusion="auto")


# Rows the heads read: [CLS], masked positions (one repeated, one on padding).
ROW_POSITIONS = np.array([[0, 2, 3, 3], [0, 1, 4, 4]], "int32")


def _encoder_grads(encoder, x, mask, weights, positions=None):
    """(rows, gradients of sum(rows * weights) w.r.t. x and every encoder weight)."""
    import tensorflow as tf
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        if positions is None:
            full = encoder(x, mask, training=True)
            rows = tf.gather(full, ROW_POSITIONS, batch_dims=1)
        else:
            rows = encoder(x, mask, training=True, output_positions=positions)
        loss = tf.reduce_sum(rows * weights)
    return rows, tape.gradient(loss, [x] + encoder.trainable_weights)


@pytest.mark.parametrize("sharing,fusion", [("all", "xla_cpu"), ("all", "plain"),
                                             ("none", "xla")])
def test_output_positions_compute_the_rows_of_the_full_output(sharing, fusion):
    """The last block computed at a few rows gives those rows of the full output, and
    the same gradients for every weight and the input."""
    encoder = SharedEncoder(4, 16, 4, 24, num_groups=2, inner_group_num=2, sharing=sharing,
                            fusion=fusion)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
    encoder(x, mask)
    randomize(encoder, seed=12)
    weights = rng.normal(size=(2, 4, 16)).astype("float32")
    expected, expected_grads = _encoder_grads(encoder, x, mask, weights)
    rows, grads = _encoder_grads(encoder, x, mask, weights, ROW_POSITIONS)
    assert rows.shape == (2, 4, 16)
    np.testing.assert_allclose(rows.numpy(), expected.numpy(), atol=1e-5)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)
    inference = encoder(x, mask, output_positions=ROW_POSITIONS)
    np.testing.assert_allclose(inference.numpy(), expected.numpy(), atol=1e-5)


def test_output_positions_shapes_and_misuse():
    encoder = SharedEncoder(2, 16, 4, 24)
    x_in = keras.Input((None, 16))
    m_in = keras.Input((None,), dtype="int32")
    p_in = keras.Input((3,), dtype="int32")
    assert encoder(x_in, m_in, output_positions=p_in).shape == (None, 3, 16)
    x = np.zeros((2, 5, 16), "float32")
    with pytest.raises(ValueError, match="return_all_layers and output_positions"):
        encoder(x, np.ones((2, 5), "int32"), return_all_layers=True,
                output_positions=ROW_POSITIONS)
