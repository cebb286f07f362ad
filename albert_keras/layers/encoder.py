"""The post-LN transformer block and ALBERT's cross-layer shared encoder.

Read top to bottom: `multi_head_attention` states attention plainly (the spec);
SelfAttention and FeedForward are the two sub-layers of a block, each ending in its
own residual LayerNorm, computed the fast way (tested against the spec and numpy);
TransformerBlock chains them; SharedEncoder applies blocks with ALBERT's sharing.

The paper's Table 4 ablations (share only attention, or only the FFN) are expressed by
reusing sub-layer objects, so count_params() and the checkpoint hold each shared
weight once. The fast path differs from the spec only in how it computes:
- 2-D matmuls on [tokens, H], and with the fused kernels each shared kernel cast to
  the compute dtype once per call for all the layers that use it (SharedEncoder);
- the element-wise work between the GEMMs by fused_ops, in the form the model's
  `kernels` names (config.KERNELS): plain TensorFlow ops or fused XLA kernels;
- optionally (output_positions) the last block computes only the rows a model's heads
  read: keys and values still span every token, but queries, the residual and the FFN
  only those rows ([CLS] and the masked positions in pretraining, 21 of 128).
"""

import keras
import tensorflow as tf

from albert_keras.config import (check_heads, check_kernels, check_remat, check_structure,
                                 group_of_layer,
                                 shares_attention, shares_feed_forward)
from albert_keras.layers import fused_ops
from albert_keras.layers.activation import get_activation

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


def _output_shape(x_shape, positions=None):
    """[batch, seq, H], or [batch, P, H] when only `positions` [batch, P] are computed."""
    if positions is None:
        return tuple(x_shape)
    return (x_shape[0], positions.shape[1], x_shape[-1])


# --- weights -------------------------------------------------------------------------

def _initializer(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="albert_keras")
class DenseWeights(keras.layers.Layer):
    """The kernel [in, out] and bias [out] of one of a block's projections.

    Only weights: the sub-layers do the arithmetic (with the fused kernels, a shared
    kernel is cast once for every layer that uses it). Names and shapes are those of a
    keras Dense, which is what the converters address ("query/kernel", ...).
    """

    def __init__(self, units, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.initializer_range = initializer_range
        self.kernel_initializer = _initializer(initializer_range)

    def build(self, input_dim):
        # autocast=False: read as stored (float32) whatever the dtype policy; the
        # sub-layers cast kernels themselves and keep biases float32 for fused_ops.
        self.kernel = self.add_weight(shape=(input_dim, self.units), name="kernel",
                                      initializer=self.kernel_initializer, autocast=False)
        self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="zeros",
                                    autocast=False)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class LayerNormWeights(keras.layers.Layer):
    """The gamma and beta [H] of a residual LayerNorm (fused_ops.residual_layer_norm)."""

    def build(self, hidden_size):
        self.gamma = self.add_weight(shape=(hidden_size,), name="gamma", initializer="ones",
                                     autocast=False)
        self.beta = self.add_weight(shape=(hidden_size,), name="beta", initializer="zeros",
                                    autocast=False)
        self.built = True


def _cast_kernels(layer, dtype):
    """layer.projection_kernels() in dtype, for a sub-layer called on its own."""
    return {name: tf.cast(kernel, dtype) for name, kernel in layer.projection_kernels().items()}


@tf.custom_gradient
def _with_zero_gradient_for(x, unused):
    """x as it is; `unused` (a weight x does not depend on) gets the gradient zero."""
    return tf.identity(x), lambda upstream: (upstream, tf.zeros_like(unused))


def _dropout(layer, x, training, seed=None):
    """keras Dropout `layer` on x. With `seed` (int [2]) the mask is a stateless draw
    from it: a block recomputed in the backward pass (remat) draws the same mask."""
    if seed is None or not training or layer.rate == 0:
        return layer(x, training=training)
    return tf.nn.experimental.stateless_dropout(x, layer.rate, seed=seed)


def _split_seed(seed, parts):
    """`parts` independent seeds from one (or Nones without one)."""
    if seed is None:
        return [None] * parts
    return tf.unstack(tf.random.experimental.stateless_split(seed, parts))


class _ResidualSubLayer(keras.layers.Layer):
    """What both sub-layers share: an output projection, then
    out = LayerNorm(x + Dropout(h Wout + bout)).
    """

    def __init__(self, hidden_size, hidden_dropout, layer_norm_eps, initializer_range,
                 kernels, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.hidden_dropout_rate = hidden_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = check_kernels(kernels, f"{type(self).__name__} kernels")

    def projection_kernels(self):
        """{name: float32 kernel} for PROJECTIONS, as the fast path multiplies by them."""
        return {name: tf.convert_to_tensor(getattr(self, name).kernel) for name in self.PROJECTIONS}

    def _add_and_normalize(self, x, h2d, output_kernel, training, extra_bias=None,
                           dropout_seed=None):
        """x: [batch, seq, H] input of the sub-layer; h2d: [tokens, K] before the output
        projection; extra_bias: float32 [H] added with the output bias. The bias is folded
        into the residual LayerNorm unless dropout has to come after it."""
        out = tf.matmul(h2d, output_kernel)
        bias = tf.convert_to_tensor(self.output_dense.bias)
        if extra_bias is not None:
            bias = bias + extra_bias
        if training and self.hidden_dropout_rate > 0:
            out = _dropout(self.output_dropout, tf.nn.bias_add(out, tf.cast(bias, out.dtype)),
                           training, dropout_seed)
            bias = None
        out = fused_ops.residual_layer_norm(
            tf.reshape(x, (-1, self.hidden_size)), out, bias, self.layer_norm.gamma,
            self.layer_norm.beta, self.layer_norm_eps, self.kernels)
        return tf.reshape(out, tf.shape(x))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, hidden_dropout=self.hidden_dropout_rate,
                      layer_norm_eps=self.layer_norm_eps,
                      initializer_range=self.initializer_range, kernels=self.kernels)
        return config


# --- the two sub-layers --------------------------------------------------------------

@keras.saving.register_keras_serializable(package="albert_keras")
class SelfAttention(_ResidualSubLayer):
    """h = LayerNorm(x + Dropout(multi_head_attention(x))). Softmax in float32."""

    PROJECTIONS = ("query", "key", "value", "output_dense")

    def __init__(self, hidden_size, num_attention_heads, attention_dropout=0.0,
                 hidden_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02,
                 kernels="plain", **kwargs):
        super().__init__(hidden_size, hidden_dropout, layer_norm_eps, initializer_range,
                         kernels, **kwargs)
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
        dropout_seed: optional int [2]; dropout masks drawn from it (see _dropout).
        """
        dtype = self.compute_dtype
        matrices = cast_kernels or _cast_kernels(self, dtype)
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
        k = _with_zero_gradient_for(split_heads(x, matrices["key"]), self.key.bias)
        v = split_heads(x, matrices["value"], None if fold_value_bias else self.value.bias)
        scores = tf.matmul(q, k, transpose_b=True)
        probs = fused_ops.masked_softmax(scores, attention_bias(input_mask), self.kernels)
        probs_seed, output_seed = _split_seed(dropout_seed, 2)
        probs = _dropout(self.attention_dropout, probs, training, probs_seed)
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
        return keras.KerasTensor(_output_shape(x.shape, query_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_attention_heads=self.num_attention_heads,
                      attention_dropout=self.attention_dropout_rate)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class FeedForward(_ResidualSubLayer):
    """out = LayerNorm(h + Dropout(Dense(I -> H)(act(Dense(H -> I)(h)))))."""

    PROJECTIONS = ("intermediate", "output_dense")

    def __init__(self, hidden_size, intermediate_size, activation="gelu_tanh",
                 hidden_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02,
                 kernels="plain", **kwargs):
        super().__init__(hidden_size, hidden_dropout, layer_norm_eps, initializer_range,
                         kernels, **kwargs)
        self.intermediate_size = intermediate_size
        self.activation = activation
        get_activation(activation)  # fails early on an unknown name
        policy = self.dtype_policy
        self.intermediate = DenseWeights(intermediate_size, initializer_range, dtype=policy,
                                         name="ffn")
        self.output_dense = DenseWeights(hidden_size, initializer_range, dtype=policy,
                                         name="ffn_output")
        self.output_dropout = keras.layers.Dropout(hidden_dropout, dtype=policy)
        self.layer_norm = LayerNormWeights(dtype=policy, name="layer_norm")

    def build(self, x_shape):
        self.intermediate.build(self.hidden_size)
        self.output_dense.build(self.intermediate_size)
        self.layer_norm.build(self.hidden_size)
        self.built = True

    def call(self, x, training=None, cast_kernels=None, dropout_seed=None):
        """x: [batch, seq, H]; cast_kernels and dropout_seed: as in SelfAttention.call."""
        matrices = cast_kernels or _cast_kernels(self, self.compute_dtype)
        x = tf.cast(x, self.compute_dtype)
        x2d = tf.reshape(x, (-1, self.hidden_size))
        h = fused_ops.bias_activation(tf.matmul(x2d, matrices["intermediate"]),
                                      self.intermediate.bias, self.activation, self.kernels)
        return self._add_and_normalize(x, h, matrices["output_dense"], training,
                                       dropout_seed=dropout_seed)

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(intermediate_size=self.intermediate_size, activation=self.activation)
        return config


# --- the block and the shared stack ----------------------------------------------------

@keras.saving.register_keras_serializable(package="albert_keras")
class TransformerBlock(keras.layers.Layer):
    """A post-LN encoder block: SelfAttention then FeedForward.

    attention / feed_forward may be given as existing sub-layers to share them with
    other blocks; a block built that way is serialized by its owner (SharedEncoder),
    which rebuilds the same sharing from its own config.
    """

    def __init__(self, hidden_size, num_attention_heads, intermediate_size,
                 activation="gelu_tanh", hidden_dropout=0.0, attention_dropout=0.0,
                 layer_norm_eps=1e-12, initializer_range=0.02, kernels="plain",
                 attention=None, feed_forward=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.hidden_dropout_rate = hidden_dropout
        self.attention_dropout_rate = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = check_kernels(kernels, "TransformerBlock kernels")
        self.attention = attention or SelfAttention(
            hidden_size, num_attention_heads, attention_dropout=attention_dropout,
            hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range, kernels=kernels, dtype=self.dtype_policy,
            name="attention")
        self.feed_forward = feed_forward or FeedForward(
            hidden_size, intermediate_size, activation=activation,
            hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range, kernels=kernels, dtype=self.dtype_policy,
            name="feed_forward")

    def build(self, x_shape, input_mask_shape=None):
        if not self.attention.built:
            self.attention.build(x_shape)
        if not self.feed_forward.built:
            self.feed_forward.build(x_shape)
        self.built = True

    def call(self, x, input_mask, training=None, cast_kernels=None, query_positions=None,
             dropout_seed=None):
        """cast_kernels: optional (attention's, feed-forward's); query_positions: optional
        int [batch, P] to compute only those output rows; dropout_seed: optional int [2]
        to draw the dropout masks from. See SelfAttention.call."""
        attention_kernels, feed_forward_kernels = cast_kernels or (None, None)
        attention_seed, feed_forward_seed = _split_seed(dropout_seed, 2)
        x = self.attention(x, input_mask, training=training, cast_kernels=attention_kernels,
                           query_positions=query_positions, dropout_seed=attention_seed)
        return self.feed_forward(x, training=training, cast_kernels=feed_forward_kernels,
                                 dropout_seed=feed_forward_seed)

    def compute_output_spec(self, x, input_mask, training=None, cast_kernels=None,
                            query_positions=None, dropout_seed=None):
        return keras.KerasTensor(_output_shape(x.shape, query_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, activation=self.activation,
            hidden_dropout=self.hidden_dropout_rate,
            attention_dropout=self.attention_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, kernels=self.kernels)
        return config


@tf.function(jit_compile=True, autograph=False)
def _sum_in_float32(grads):
    return tf.add_n([tf.cast(g, tf.float32) for g in grads])


def cast_once_for_uses(kernel, dtype, uses, kernels):
    """`uses` copies of float32 `kernel` cast to `dtype`, cast once.

    ALBERT applies one kernel in every layer; under mixed precision each use would
    cast it again (12 casts of every shared weight per step for base). The gradient
    sums the uses' gradients in float32, as the per-use casts did, in one fused pass
    (an XLA kernel, so only with fused kernels; plain ops keep the per-use casts,
    which grappler merges into one when no gradient is taken).
    """
    kernel = tf.convert_to_tensor(kernel)
    if uses == 1 or kernel.dtype == tf.as_dtype(dtype) or not fused_ops.is_fused(kernels):
        return [tf.cast(kernel, dtype) for _ in range(uses)]

    @tf.custom_gradient
    def fan_out(value):
        cast = tf.cast(value, dtype)

        def grad(*upstream):
            present = [g for g in upstream if g is not None]
            if not present:
                return tf.zeros_like(value)
            return _sum_in_float32(present)

        return [tf.identity(cast) for _ in range(uses)], grad

    return fan_out(kernel)


@tf.function(jit_compile=True, autograph=False)
def _add_in_float32(running_sum, gradient):
    return running_sum + tf.cast(gradient, tf.float32)


def cast_in_chain_for_uses(kernel, dtype, uses, kernels):
    """`uses` copies of float32 `kernel` cast to `dtype` (cast once, as in
    cast_once_for_uses), whose gradients are summed one by one, in float32, as the
    backward pass produces them.

    A kernel used in L layers gets L weight-sized gradients; summed at the end (as
    cast_once_for_uses and TensorFlow's own aggregation do) they are all alive at once:
    for ALBERT-xlarge 24 x 200 MB, more than its activations at small batches. Here use
    i comes out of link i of a chain, whose gradient is use i's gradient plus link
    i+1's: a running sum, two weight-sized tensors at a time. With fused kernels each
    partial sum is an XLA call: grappler's arithmetic optimizer had merged a chain of
    TensorFlow's own gradient sums back into one sum of all L. The plain adds here were
    measured to stay a chain (BENCHMARKS.md, rematerialization).
    """
    kernel = tf.convert_to_tensor(kernel)
    cast = tf.cast(kernel, dtype)
    add = _add_in_float32 if fused_ops.is_fused(kernels) else (
        lambda running_sum, g: running_sum + tf.cast(g, tf.float32))

    @tf.custom_gradient
    def link(running, shared_cast):
        def grad(use_gradient, next_gradient):
            if use_gradient is None:
                use_gradient = tf.zeros_like(shared_cast)
            total = (tf.cast(use_gradient, tf.float32) if next_gradient is None
                     else add(next_gradient, use_gradient))
            return total, None  # the gradient reaches the kernel through the chain

        return (tf.identity(shared_cast), tf.identity(running)), grad

    copies, running = [], kernel
    for _ in range(uses):
        use, running = link(running, cast)
        copies.append(use)
    return copies


@keras.saving.register_keras_serializable(package="albert_keras")
class SharedEncoder(keras.layers.Layer):
    """num_layers post-LN blocks with ALBERT's cross-layer sharing.

    Layer i (of L) belongs to group floor(i * G / L) (config.group_of_layer); each
    group holds inner_group_num blocks run one after another. sharing decides which
    sub-layers a group owns:
      "all"        attention and FFN owned by the group (reference ALBERT)
      "attention"  attention owned by the group, FFN owned by each layer
      "ffn"        FFN owned by the group, attention owned by each layer
      "none"       both owned by each layer (BERT-style)
    attention_layers[j] / feed_forward_layers[j] list the owned sub-layers; owner index
    j is group * inner_group_num + k for group-owned, layer * inner_group_num + k for
    layer-owned ones (see attention_index / feed_forward_index).

    remat (config.REMAT_MODES): "block" keeps only each block's input for the backward
    pass of a training call and recomputes the rest there (tf.recompute_grad), and sums
    a shared kernel's per-layer gradients as they come (cast_in_chain_for_uses).
    """

    def __init__(self, num_layers, hidden_size, num_attention_heads, intermediate_size,
                 num_groups=1, inner_group_num=1, sharing="all", activation="gelu_tanh",
                 hidden_dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, kernels="plain", remat="none", **kwargs):
        super().__init__(**kwargs)
        check_structure(hidden_size, num_attention_heads, num_layers, num_groups, sharing,
                        where="SharedEncoder")
        self.remat = check_remat(remat, "SharedEncoder remat")
        # A recomputed block must draw the dropout masks of its first pass: the seeds
        # are drawn outside it, from this generator (not a weight; see _dropout).
        self._remat_seeds = (keras.random.SeedGenerator(name="remat_dropout_seeds")
                             if remat != "none" and (hidden_dropout or attention_dropout)
                             else None)
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.num_groups = num_groups
        self.inner_group_num = inner_group_num
        self.sharing = sharing
        self.activation = activation
        self.hidden_dropout_rate = hidden_dropout
        self.attention_dropout_rate = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.kernels = check_kernels(kernels, "SharedEncoder kernels")
        policy = self.dtype_policy

        def owners(shared):
            return (num_groups if shared else num_layers) * inner_group_num

        self.attention_layers = [
            SelfAttention(hidden_size, num_attention_heads, attention_dropout=attention_dropout,
                          hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
                          initializer_range=initializer_range, kernels=kernels, dtype=policy,
                          name=f"attention_{j}")
            for j in range(owners(shares_attention(sharing)))]
        self.feed_forward_layers = [
            FeedForward(hidden_size, intermediate_size, activation=activation,
                        hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
                        initializer_range=initializer_range, kernels=kernels, dtype=policy,
                        name=f"feed_forward_{j}")
            for j in range(owners(shares_feed_forward(sharing)))]
        # One block object per distinct (attention, FFN) pair, in first-use order.
        self.blocks = []
        self._schedule = []  # block index of every step (layer, inner)
        self._pairs = []  # (attention owner, FFN owner) of every step
        pair_to_block = {}
        for layer_index in range(num_layers):
            for inner in range(inner_group_num):
                pair = (self.attention_index(layer_index, inner),
                        self.feed_forward_index(layer_index, inner))
                if pair not in pair_to_block:
                    pair_to_block[pair] = len(self.blocks)
                    self.blocks.append(TransformerBlock(
                        hidden_size, num_attention_heads, intermediate_size,
                        activation=activation, hidden_dropout=hidden_dropout,
                        attention_dropout=attention_dropout, layer_norm_eps=layer_norm_eps,
                        initializer_range=initializer_range, kernels=kernels,
                        attention=self.attention_layers[pair[0]],
                        feed_forward=self.feed_forward_layers[pair[1]], dtype=policy,
                        name=f"block_{len(self.blocks)}"))
                self._schedule.append(pair_to_block[pair])
                self._pairs.append(pair)

    def _owner(self, shared, layer_index, inner):
        group = group_of_layer(layer_index, self.num_layers, self.num_groups)
        return (group if shared else layer_index) * self.inner_group_num + inner

    def group_sublayers(self, group, inner=0):
        """(attention, feed-forward) of group `group`'s inner block `inner`: the unit the
        reference checkpoints, transformers and keras-hub store (sharing "all")."""
        if self.sharing != "all":
            raise ValueError(f"group_sublayers needs sharing 'all', not {self.sharing!r}")
        owner = group * self.inner_group_num + inner
        return self.attention_layers[owner], self.feed_forward_layers[owner]

    def attention_index(self, layer_index, inner=0):
        return self._owner(shares_attention(self.sharing), layer_index, inner)

    def feed_forward_index(self, layer_index, inner=0):
        return self._owner(shares_feed_forward(self.sharing), layer_index, inner)

    def build(self, x_shape, input_mask_shape=None):
        for layer in self.attention_layers + self.feed_forward_layers + self.blocks:
            layer.build(x_shape)
        self.built = True

    def call(self, x, input_mask, training=None, return_all_layers=False,
             output_positions=None):
        """x: [batch, seq, H]; input_mask: [batch, seq] of 1 (token) / 0 (padding).

        Returns the last layer's output, or with return_all_layers a list of L + 1
        tensors: the input followed by every layer's output.

        output_positions: optional int [batch, P]. The output is then the last layer's
        output at those positions only, [batch, P, H], and the last block computes just
        those rows (about 70% of its work is never read by the pretraining heads).
        """
        if return_all_layers and output_positions is not None:
            raise ValueError("SharedEncoder: return_all_layers and output_positions "
                             "cannot be used together")
        chained = bool(training) and self.remat == "block"
        attention_kernels = self._kernels_per_use(
            self.attention_layers, [a for a, _ in self._pairs], chained)
        feed_forward_kernels = self._kernels_per_use(
            self.feed_forward_layers, [f for _, f in self._pairs], chained)
        hidden_states = [x]
        step = 0
        for _ in range(self.num_layers):
            for _ in range(self.inner_group_num):
                attention, feed_forward = self._pairs[step]
                cast_kernels = (next(attention_kernels[attention]),
                                next(feed_forward_kernels[feed_forward]))
                last = step == len(self._schedule) - 1
                block = self.blocks[self._schedule[step]]
                positions = output_positions if last else None
                if training and self.remat == "block":
                    # The last block's backward pass comes first, while its activations
                    # would be alive anyway: recomputing it would only cost time.
                    x = self._block_for_remat(block, x, input_mask, cast_kernels, positions,
                                              recompute=not last)
                else:
                    x = block(x, input_mask, training=training, cast_kernels=cast_kernels,
                              query_positions=positions)
                step += 1
            hidden_states.append(x)
        return hidden_states if return_all_layers else x

    def _block_for_remat(self, block, x, input_mask, cast_kernels, query_positions,
                         recompute):
        """block(x) in training under remat "block". With recompute, only x (and the
        kernels) is kept for the backward pass, which runs the block again to get its
        intermediates. Dropout masks come from a seed drawn here, outside the block."""
        seed = self._remat_seeds.next() if self._remat_seeds is not None else None
        flat_kernels = tf.nest.flatten(cast_kernels)

        def forward(x, *kernels):
            return block(x, input_mask, training=True, query_positions=query_positions,
                         cast_kernels=tf.nest.pack_sequence_as(cast_kernels, list(kernels)),
                         dropout_seed=seed)

        if recompute:
            forward = tf.recompute_grad(forward)
        return forward(x, *flat_kernels)

    def _kernels_per_use(self, owners, owner_of_step, chained):
        """For each owner sub-layer, an iterator over its uses of {name: kernel}, every
        shared kernel cast to the compute dtype once (cast_once_for_uses; chained:
        cast_in_chain_for_uses)."""
        per_owner = []
        for index, layer in enumerate(owners):
            uses = owner_of_step.count(index)
            if chained:  # memory first: a running sum of the gradients
                copies = {name: cast_in_chain_for_uses(kernel, self.compute_dtype, uses,
                                                       self.kernels)
                          for name, kernel in layer.projection_kernels().items()}
            else:
                copies = {name: cast_once_for_uses(kernel, self.compute_dtype, uses, self.kernels)
                          for name, kernel in layer.projection_kernels().items()}
            per_owner.append(iter([{name: copies[name][use] for name in layer.PROJECTIONS}
                                   for use in range(uses)]))
        return per_owner

    def compute_output_spec(self, x, input_mask, training=None, return_all_layers=False,
                            output_positions=None):
        if return_all_layers:
            return [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                    for _ in range(self.num_layers + 1)]
        return keras.KerasTensor(_output_shape(x.shape, output_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers, hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, num_groups=self.num_groups,
            inner_group_num=self.inner_group_num, sharing=self.sharing,
            activation=self.activation, hidden_dropout=self.hidden_dropout_rate,
            attention_dropout=self.attention_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, kernels=self.kernels,
            remat=self.remat)
        return config
