"""The post-LN transformer block and ALBERT's cross-layer shared encoder.

SelfAttention and FeedForward are the two sub-layers of a block, each with its own
residual LayerNorm, so that the paper's Table 4 ablations (share only attention, or
only the FFN) are expressed by reusing sub-layer objects. Sharing by reuse means
count_params() and the checkpoint hold each shared weight once.

The Dense / LayerNormalization sub-layers hold the weights (their names are the
checkpoint layout); the blocks compute with them directly: 2-D matmuls on
[tokens, H], kernels cast to the compute dtype once per call for all the layers that
share them, and the element-wise work between the GEMMs done by fused_ops (one XLA
kernel each in training, plain TensorFlow ops for inference and export).
"""

import keras
import tensorflow as tf
from keras import ops

from albert_keras.layers import fused_ops
from albert_keras.layers.activation import get_activation
from albert_keras.layers.variables import stored_value

# Softmax runs in float32; this additive bias removes padded keys.
_MASK_BIAS = -1e9


def attention_bias(input_mask):
    """[batch, seq] 1/0 mask -> [batch, 1, 1, seq] float32 additive bias.

    Built inside each attention call from the integer mask: a float bias passed
    between layers would be autocast to float16 and overflow to -inf.
    """
    mask = ops.cast(input_mask, "float32")
    return ops.expand_dims(ops.expand_dims((1.0 - mask) * _MASK_BIAS, 1), 1)


def _output_shape(x_shape, positions=None):
    """[batch, seq, H], or [batch, P, H] when only `positions` [batch, P] are computed."""
    if positions is None:
        return tuple(x_shape)
    return (x_shape[0], positions.shape[1], x_shape[-1])


def _dense(units, initializer_range, dtype, name, activation=None):
    return keras.layers.Dense(
        units, activation=activation,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        dtype=dtype, name=name)


def _own_kernels(layer, names, dtype):
    """{name: kernel cast to dtype} for a sub-layer called on its own."""
    return {name: tf.cast(stored_value(getattr(layer, name).kernel), dtype) for name in names}


def _residual_output(sublayer, x, h2d, kernel, training, extra_bias=None):
    """LayerNorm(x + Dropout(h @ kernel + bias [+ extra_bias])), the end of both sub-layers.

    x: [batch, seq, H] input of the sub-layer; h2d: [tokens, K]. The bias is folded
    into the (fused) residual LayerNorm unless dropout has to come after it.
    """
    x2d = tf.reshape(x, (-1, sublayer.hidden_size))
    out = tf.matmul(h2d, kernel)
    bias = stored_value(sublayer.output_dense.bias)
    if extra_bias is not None:
        bias = bias + extra_bias
    if training and sublayer.hidden_dropout_rate > 0:
        out = sublayer.output_dropout(tf.nn.bias_add(out, tf.cast(bias, out.dtype)),
                                      training=training)
        bias = None
    layer_norm = sublayer.layer_norm
    out = fused_ops.residual_layer_norm(
        x2d, out, bias, stored_value(layer_norm.gamma), stored_value(layer_norm.beta),
        sublayer.layer_norm_eps, training=training)
    return tf.reshape(out, tf.shape(x))


@keras.saving.register_keras_serializable(package="albert_keras")
class SelfAttention(keras.layers.Layer):
    """h = LayerNorm(x + Dropout(Dense(MultiHeadAttention(x)))). Scores and softmax in float32."""

    def __init__(self, hidden_size, num_attention_heads, attention_dropout=0.0,
                 hidden_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by "
                             f"num_attention_heads {num_attention_heads}")
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.head_size = hidden_size // num_attention_heads
        self.attention_dropout_rate = attention_dropout
        self.hidden_dropout_rate = hidden_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        policy = self.dtype_policy
        self.query = _dense(hidden_size, initializer_range, policy, "query")
        self.key = _dense(hidden_size, initializer_range, policy, "key")
        self.value = _dense(hidden_size, initializer_range, policy, "value")
        self.output_dense = _dense(hidden_size, initializer_range, policy, "dense")
        self.attention_dropout = keras.layers.Dropout(attention_dropout, dtype=policy)
        self.output_dropout = keras.layers.Dropout(hidden_dropout, dtype=policy)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="layer_norm")

    def build(self, x_shape, input_mask_shape=None):
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build((None, None, self.hidden_size))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    KERNELS = ("query", "key", "value", "output_dense")

    def call(self, x, input_mask, training=None, kernels=None, query_positions=None):
        """x: [batch, seq, H]; input_mask: int [batch, seq], 1 for tokens, 0 for padding.

        kernels: optional {name: kernel already in the compute dtype} for KERNELS, given
        by SharedEncoder, which casts a shared kernel once for all its uses.
        query_positions: optional int [batch, P]; the output is then [batch, P, H], the
        rows of the full output at those positions (keys and values still span all of x),
        for callers that read only a few positions of the last layer.
        """
        dtype = self.compute_dtype
        if kernels is None:
            kernels = _own_kernels(self, self.KERNELS, dtype)
        x = tf.cast(x, dtype)
        batch, seq = tf.shape(x)[0], tf.shape(x)[1]
        x2d = tf.reshape(x, (-1, self.hidden_size))
        queries, query_len, queries2d = x, seq, x2d
        if query_positions is not None:
            queries = tf.gather(x, tf.cast(query_positions, tf.int32), batch_dims=1)
            query_len = tf.shape(queries)[1]
            queries2d = tf.reshape(queries, (-1, self.hidden_size))

        heads, head_size = self.num_attention_heads, self.head_size
        scale = 1.0 / head_size ** 0.5
        fold_scale = not fused_ops.use_xla(training)  # the fused softmax scales for free

        # At inference two biases need no [tokens, H] add (exact algebra, any input):
        # the key bias shifts all of a query's scores equally, which softmax ignores,
        # and since each row of probabilities sums to 1 the value bias reaches the
        # output as value_bias @ W_out, a [H] vector added with the output bias.
        inference = not training

        def project(name, source2d, length, add_bias=True):  # -> [batch, heads, length, d]
            kernel = kernels[name]
            bias = tf.cast(stored_value(getattr(self, name).bias), dtype)
            if name == "query" and fold_scale:
                # q * scale, as a [H, H] kernel scaling rather than a [tokens, H] one
                kernel, bias = kernel * tf.cast(scale, dtype), bias * tf.cast(scale, dtype)
            h = tf.reshape(tf.matmul(source2d, kernel), (batch, length, heads, head_size))
            if add_bias:
                # Added after the reshape on purpose: grappler would otherwise fuse
                # MatMul + BiasAdd into oneDNN's fused bf16 kernel, 2x slower here.
                h = h + tf.reshape(bias, (heads, head_size))
            return tf.transpose(h, (0, 2, 1, 3))

        # Batched matmuls on [batch, heads, seq, head_size]: their gradients are plain
        # batched matmuls too, where einsum's were 4x slower on CPU (BENCHMARKS.md).
        q = project("query", queries2d, query_len)
        k = project("key", x2d, seq, add_bias=not inference)
        v = project("value", x2d, seq, add_bias=not inference)
        scores = tf.matmul(q, k, transpose_b=True)
        probs = fused_ops.scaled_masked_softmax(
            scores, attention_bias(input_mask), scale, training=training)  # plain: pre-scaled
        probs = self.attention_dropout(probs, training=training)
        context = tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))
        context = tf.reshape(context, (-1, self.hidden_size))
        extra_bias = None
        if inference:
            extra_bias = tf.linalg.matvec(stored_value(self.output_dense.kernel),
                                          stored_value(self.value.bias), transpose_a=True)
        return _residual_output(self, queries, context, kernels["output_dense"], training,
                                extra_bias)

    def compute_output_spec(self, x, input_mask, training=None, kernels=None,
                            query_positions=None):
        return keras.KerasTensor(_output_shape(x.shape, query_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_attention_heads=self.num_attention_heads,
            attention_dropout=self.attention_dropout_rate,
            hidden_dropout=self.hidden_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class FeedForward(keras.layers.Layer):
    """out = LayerNorm(h + Dropout(Dense(I -> H)(act(Dense(H -> I)(h)))))."""

    def __init__(self, hidden_size, intermediate_size, activation="gelu_tanh",
                 hidden_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.hidden_dropout_rate = hidden_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        policy = self.dtype_policy
        get_activation(activation)  # fails early on an unknown name
        self.intermediate = _dense(intermediate_size, initializer_range, policy, "ffn")
        self.output_dense = _dense(hidden_size, initializer_range, policy, "ffn_output")
        self.output_dropout = keras.layers.Dropout(hidden_dropout, dtype=policy)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="layer_norm")

    def build(self, x_shape):
        self.intermediate.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.intermediate_size))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    KERNELS = ("intermediate", "output_dense")

    def call(self, x, training=None, kernels=None):
        """x: [batch, seq, H]; kernels: as in SelfAttention.call, for KERNELS."""
        dtype = self.compute_dtype
        if kernels is None:
            kernels = _own_kernels(self, self.KERNELS, dtype)
        x = tf.cast(x, dtype)
        x2d = tf.reshape(x, (-1, self.hidden_size))
        h = fused_ops.bias_activation(tf.matmul(x2d, kernels["intermediate"]),
                                      stored_value(self.intermediate.bias), self.activation,
                                      training=training)
        return _residual_output(self, x, h, kernels["output_dense"], training)

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            activation=self.activation, hidden_dropout=self.hidden_dropout_rate,
            layer_norm_eps=self.layer_norm_eps, initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class TransformerBlock(keras.layers.Layer):
    """A post-LN encoder block: SelfAttention then FeedForward.

    attention / feed_forward may be given as existing sub-layers to share them with
    other blocks; a block built that way is serialized by its owner (SharedEncoder),
    which rebuilds the same sharing from its own config.
    """

    def __init__(self, hidden_size, num_attention_heads, intermediate_size,
                 activation="gelu_tanh", hidden_dropout=0.0, attention_dropout=0.0,
                 layer_norm_eps=1e-12, initializer_range=0.02, attention=None,
                 feed_forward=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.hidden_dropout_rate = hidden_dropout
        self.attention_dropout_rate = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.attention = attention or SelfAttention(
            hidden_size, num_attention_heads, attention_dropout=attention_dropout,
            hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range, dtype=self.dtype_policy, name="attention")
        self.feed_forward = feed_forward or FeedForward(
            hidden_size, intermediate_size, activation=activation,
            hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range, dtype=self.dtype_policy, name="feed_forward")

    def build(self, x_shape, input_mask_shape=None):
        if not self.attention.built:
            self.attention.build(x_shape)
        if not self.feed_forward.built:
            self.feed_forward.build(x_shape)
        self.built = True

    def call(self, x, input_mask, training=None, kernels=None, query_positions=None):
        """kernels: optional (attention kernels, FFN kernels); query_positions: optional
        int [batch, P] to compute only those output rows. See SelfAttention.call."""
        attention_kernels, feed_forward_kernels = kernels or (None, None)
        x = self.attention(x, input_mask, training=training, kernels=attention_kernels,
                           query_positions=query_positions)
        return self.feed_forward(x, training=training, kernels=feed_forward_kernels)

    def compute_output_spec(self, x, input_mask, training=None, kernels=None,
                            query_positions=None):
        return keras.KerasTensor(_output_shape(x.shape, query_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, activation=self.activation,
            hidden_dropout=self.hidden_dropout_rate,
            attention_dropout=self.attention_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class SharedEncoder(keras.layers.Layer):
    """num_layers post-LN blocks with ALBERT's cross-layer sharing.

    Layer i (of L) belongs to group floor(i * G / L); each group holds inner_group_num
    blocks run one after another. sharing decides which sub-layers a group owns:
      "all"        attention and FFN owned by the group (reference ALBERT)
      "attention"  attention owned by the group, FFN owned by each layer
      "ffn"        FFN owned by the group, attention owned by each layer
      "none"       both owned by each layer (BERT-style)
    attention_layers[j] / feed_forward_layers[j] list the owned sub-layers; owner index
    j is group * inner_group_num + k for group-owned, layer * inner_group_num + k for
    layer-owned ones (see attention_index / feed_forward_index).
    """

    def __init__(self, num_layers, hidden_size, num_attention_heads, intermediate_size,
                 num_groups=1, inner_group_num=1, sharing="all", activation="gelu_tanh",
                 hidden_dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if sharing not in ("all", "attention", "ffn", "none"):
            raise ValueError(f"Unknown sharing mode {sharing!r}")
        if num_layers % num_groups:
            raise ValueError(f"num_layers {num_layers} is not divisible by num_groups {num_groups}")
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
        policy = self.dtype_policy

        def owners(shared):
            return (num_groups if shared else num_layers) * inner_group_num

        self.attention_layers = [
            SelfAttention(hidden_size, num_attention_heads, attention_dropout=attention_dropout,
                          hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
                          initializer_range=initializer_range, dtype=policy,
                          name=f"attention_{j}")
            for j in range(owners(sharing in ("all", "attention")))]
        self.feed_forward_layers = [
            FeedForward(hidden_size, intermediate_size, activation=activation,
                        hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
                        initializer_range=initializer_range, dtype=policy,
                        name=f"feed_forward_{j}")
            for j in range(owners(sharing in ("all", "ffn")))]
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
                        initializer_range=initializer_range,
                        attention=self.attention_layers[pair[0]],
                        feed_forward=self.feed_forward_layers[pair[1]], dtype=policy,
                        name=f"block_{len(self.blocks)}"))
                self._schedule.append(pair_to_block[pair])
                self._pairs.append(pair)

    def group_of_layer(self, layer_index):
        return layer_index * self.num_groups // self.num_layers

    def _owner(self, shared, layer_index, inner):
        outer = self.group_of_layer(layer_index) if shared else layer_index
        return outer * self.inner_group_num + inner

    def attention_index(self, layer_index, inner=0):
        return self._owner(self.sharing in ("all", "attention"), layer_index, inner)

    def feed_forward_index(self, layer_index, inner=0):
        return self._owner(self.sharing in ("all", "ffn"), layer_index, inner)

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
        those rows: the heads of pretraining and classification read 1 + 20 of 128
        positions, so most of the last block's work (about 70% of it) is never needed.
        """
        if return_all_layers and output_positions is not None:
            raise ValueError("SharedEncoder: return_all_layers and output_positions "
                             "cannot be used together")
        attention_kernels = self._kernels_per_use(
            self.attention_layers, [a for a, _ in self._pairs], training)
        feed_forward_kernels = self._kernels_per_use(
            self.feed_forward_layers, [f for _, f in self._pairs], training)
        hidden_states = [x]
        step = 0
        for _ in range(self.num_layers):
            for _ in range(self.inner_group_num):
                attention, feed_forward = self._pairs[step]
                kernels = (next(attention_kernels[attention]),
                           next(feed_forward_kernels[feed_forward]))
                last = step == len(self._schedule) - 1
                x = self.blocks[self._schedule[step]](
                    x, input_mask, training=training, kernels=kernels,
                    query_positions=output_positions if last else None)
                step += 1
            hidden_states.append(x)
        return hidden_states if return_all_layers else x

    def _kernels_per_use(self, owners, owner_of_step, training):
        """For each owner sub-layer, an iterator over its uses of {name: kernel}, every
        shared kernel cast to the compute dtype once (fused_ops.cast_for_uses)."""
        per_owner = []
        for index, layer in enumerate(owners):
            uses = owner_of_step.count(index)
            copies = {name: fused_ops.cast_for_uses(
                          stored_value(getattr(layer, name).kernel), self.compute_dtype,
                          uses, training=training)
                      for name in layer.KERNELS}
            per_owner.append(iter([{name: copies[name][use] for name in layer.KERNELS}
                                   for use in range(uses)]))
        return per_owner

    def compute_output_spec(self, x, input_mask, training=None, return_all_layers=False,
                            output_positions=None):
        spec = keras.KerasTensor(_output_shape(x.shape, output_positions),
                                 dtype=self.compute_dtype)
        if return_all_layers:
            return [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                    for _ in range(self.num_layers + 1)]
        return spec

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers, hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, num_groups=self.num_groups,
            inner_group_num=self.inner_group_num, sharing=self.sharing,
            activation=self.activation, hidden_dropout=self.hidden_dropout_rate,
            attention_dropout=self.attention_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range)
        return config
