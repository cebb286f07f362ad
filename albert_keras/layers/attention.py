"""Self-attention: `multi_head_attention` states it plainly (the spec); SelfAttention is
the sub-layer that computes it the fast way (2-D matmuls on [tokens, H], element-wise work
by fused_ops), tested against the spec and numpy."""

import keras
import tensorflow as tf

from albert_keras.config import check_heads
from albert_keras.layers import fused_ops
from albert_keras.layers.sublayer import (DenseWeights, LayerNormWeights, ResidualSubLayer,
                                          apply_dropout, output_shape, projection_kernels_in,
                                          split_seed, with_zero_gradient_for)

# Softmax runs in float32; this additive bias removes padded keys.
MASK_BIAS = -1e9


def attention_bias(input_mask):
    """[batch, seq] 1/0 mask -> [batch, 1, 1, seq] float32 additive bias.

    Built inside each attention call from the integer mask: a float bias passed
    between layers would be autocast to float16 and overflow to -inf.
    """
    mask = tf.cast(input_mask, tf.float32)
    return ((1.0 - mask) * MASK_BIAS)[:, None, None, :]


def multi_head_attention(x, input_mask, weights, num_heads, dropout=None):
    """Multi-head self-attention as ALBERT (and BERT) define it, in float32.

    x: [batch, seq, H]; input_mask: [batch, seq], 1 for tokens, 0 for padding;
    weights: {"query" | "key" | "value" | "output": (kernel [H, H], bias [H])};
    dropout: optional function applied to the attention probabilities.

        q, k, v = x Wq + bq, x Wk + bk, x Wv + bv        each split into heads of d = H / heads
        scores  = q kᵀ / sqrt(d) + mask bias              -1e9 at padded keys
        probs   = softmax(scores)                         over the keys
        context = dropout(probs) v                        heads joined again: [batch, seq, H]
        return    context Wo + bo

    SelfAttention.call computes the same (plus its residual LayerNorm) the fast way.
    """
    x = tf.cast(x, tf.float32)
    batch, seq, hidden = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    head_size = hidden // num_heads

    def dense(t, name):
        kernel, bias = weights[name]
        return tf.matmul(t, tf.cast(kernel, tf.float32)) + tf.cast(bias, tf.float32)

    def split_heads(t):  # [batch, seq, H] -> [batch, heads, seq, d]
        return tf.transpose(tf.reshape(t, (batch, seq, num_heads, head_size)), (0, 2, 1, 3))

    q, k, v = (split_heads(dense(x, name)) for name in ("query", "key", "value"))
    scores = tf.matmul(q, k, transpose_b=True) / head_size ** 0.5 + attention_bias(input_mask)
    probs = tf.nn.softmax(scores, axis=-1)
    if dropout is not None:
        probs = dropout(probs)
    context = tf.reshape(tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3)), (batch, seq, hidden))
    return dense(context, "output")


@keras.saving.register_keras_serializable(package="albert_keras")
class SelfAttention(ResidualSubLayer):
    """h = LayerNorm(x + Dropout(multi_head_attention(x))). Softmax in float32."""

    PROJECTIONS = ("query", "key", "value", "output_dense")

    def __init__(self, hidden_size, num_attention_heads, attention_dropout=0.0,
                 hidden_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02,
                 fusion="plain", **kwargs):
        super().__init__(hidden_size, hidden_dropout, layer_norm_eps, initializer_range,
                         fusion, **kwargs)
        check_heads(hidden_size, num_attention_heads, where="SelfAttention")
        self.num_attention_heads = num_attention_heads
        self.head_size = hidden_size // num_attention_heads
        self.scale = 1.0 / self.head_size ** 0.5
        self.attention_dropout_rate = attention_dropout
        policy = self.dtype_policy
        self.query = DenseWeights(hidden_size, initializer_range, dtype=policy, name="query")
        self.key = DenseWeights(hidden_size, initializer_range, dtype=policy, name="key")
        self.value = DenseWeights(hidden_size, initializer_range, dtype=policy, name="value")
        self.output_dense = DenseWeights(hidden_size, initializer_range, dtype=policy,
                                         name="dense")
        self.attention_dropout = keras.layers.Dropout(attention_dropout, dtype=policy)
        self.output_dropout = keras.layers.Dropout(hidden_dropout, dtype=policy)
        self.layer_norm = LayerNormWeights(dtype=policy, name="layer_norm")

    def build(self, x_shape, input_mask_shape=None):
        for weights in (self.query, self.key, self.value, self.output_dense):
            weights.build(self.hidden_size)
        self.layer_norm.build(self.hidden_size)
        self.built = True

    def weights_by_role(self):
        """The weights in multi_head_attention's layout."""
        return {role: (layer.kernel, layer.bias) for role, layer in
                (("query", self.query), ("key", self.key), ("value", self.value),
                 ("output", self.output_dense))}

    def projection_kernels(self):
        """{name: float32 kernel} for PROJECTIONS; the query kernel carries the scale
        1/sqrt(d): q kᵀ / sqrt(d) = (q / sqrt(d)) kᵀ, an [H, H] multiply instead of one
        over every score. The only place the scale is applied."""
        matrices = super().projection_kernels()
        matrices["query"] = matrices["query"] * self.scale
        return matrices

    def call(self, x, input_mask, training=None, cast_kernels=None, query_positions=None,
             dropout_seed=None):
        """x: [batch, seq, H]; input_mask: int [batch, seq], 1 for tokens, 0 for padding.

        multi_head_attention's steps, then the residual LayerNorm, with three exact
        shortcuts (tested against multi_head_attention, values and gradients):
        - the scale is folded into the query projection (projection_kernels);
        - the key bias is not added: it shifts all of a query's scores by the same
          amount, which softmax ignores (its gradient, exactly zero, is given as such);
        - the value bias is folded into the output bias: each row of probabilities sums
          to 1, so it reaches the output as bv Wo. Not while dropout acts on the
          probabilities, whose rows then no longer sum to 1.

        cast_kernels: optional projection_kernels() already in the compute dtype, given
        by SharedEncoder, which casts a shared kernel once for all its uses.
        query_positions: optional int [batch, P]; the output is then [batch, P, H], the
        rows of the full output at those positions (keys and values still span x).
        dropout_seed: optional int [2]; dropout masks drawn from it (see apply_dropout).
        """
        dtype = self.compute_dtype
        matrices = cast_kernels or projection_kernels_in(self, dtype)
        x = tf.cast(x, dtype)
        queries = x
        if query_positions is not None:
            queries = tf.gather(x, tf.cast(query_positions, tf.int32), batch_dims=1)
        heads, head_size = self.num_attention_heads, self.head_size

        def split_heads(rows, kernel, bias=None):  # rows W (+ b) -> [batch, heads, len, d]
            batch, length = tf.shape(rows)[0], tf.shape(rows)[1]
            h = tf.matmul(tf.reshape(rows, (-1, self.hidden_size)), kernel)
            h = tf.reshape(h, (batch, length, heads, head_size))
            if bias is not None:
                # Added after the reshape on purpose: grappler would otherwise fuse
                # MatMul + BiasAdd into oneDNN's fused bf16 kernel, which is slower
                # (BENCHMARKS.md, kernel choices).
                h = h + tf.reshape(tf.cast(bias, dtype), (heads, head_size))
            return tf.transpose(h, (0, 2, 1, 3))

        fold_value_bias = not (training and self.attention_dropout_rate > 0)
        # Batched matmuls on [batch, heads, seq, d]: their gradients are batched matmuls
        # too, where einsum's were slower on CPU (BENCHMARKS.md, kernel choices).
        q = split_heads(queries, matrices["query"], self.query.bias * self.scale)
        k = with_zero_gradient_for(split_heads(x, matrices["key"]), self.key.bias)
        v = split_heads(x, matrices["value"], None if fold_value_bias else self.value.bias)
        scores = tf.matmul(q, k, transpose_b=True)
        probs = fused_ops.masked_softmax(scores, attention_bias(input_mask), self.fusion)
        probs_seed, output_seed = split_seed(dropout_seed, 2)
        probs = apply_dropout(self.attention_dropout, probs, training, probs_seed)
        context = tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))
        context = tf.reshape(context, (-1, self.hidden_size))
        value_bias_out = None
        if fold_value_bias:
            value_bias_out = tf.linalg.matvec(self.output_dense.kernel, self.value.bias,
                                              transpose_a=True)
        return self._add_and_normalize(queries, context, matrices["output_dense"], training,
                                       value_bias_out, output_seed)

    def compute_output_spec(self, x, input_mask, training=None, cast_kernels=None,
                            query_positions=None, dropout_seed=None):
        return keras.KerasTensor(output_shape(x.shape, query_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_attention_heads=self.num_attention_heads,
                      attention_dropout=self.attention_dropout_rate)
        return config
