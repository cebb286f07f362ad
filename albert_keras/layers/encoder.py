"""The post-LN transformer block and ALBERT's cross-layer shared encoder.

SelfAttention and FeedForward are the two sub-layers of a block, each with its own
residual LayerNorm, so that the paper's Table 4 ablations (share only attention, or
only the FFN) are expressed by reusing sub-layer objects. Sharing by reuse means
count_params() and the checkpoint hold each shared weight once.
"""

import keras
from keras import ops

from albert_keras.layers.activation import get_activation

# Softmax runs in float32; this additive bias removes padded keys.
_MASK_BIAS = -1e9


def attention_bias(input_mask):
    """[batch, seq] 1/0 mask -> [batch, 1, 1, seq] float32 additive bias.

    Built inside each attention call from the integer mask: a float bias passed
    between layers would be autocast to float16 and overflow to -inf.
    """
    mask = ops.cast(input_mask, "float32")
    return ops.expand_dims(ops.expand_dims((1.0 - mask) * _MASK_BIAS, 1), 1)


def _dense(units, initializer_range, dtype, name, activation=None):
    return keras.layers.Dense(
        units, activation=activation,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        dtype=dtype, name=name)


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

    def _split_heads(self, x):
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch, seq, self.num_attention_heads, self.head_size))

    def call(self, x, input_mask, training=None):
        """x: [batch, seq, H]; input_mask: int [batch, seq], 1 for tokens, 0 for padding."""
        bias = attention_bias(input_mask)
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        scale = ops.cast(1.0 / self.head_size ** 0.5, q.dtype)
        scores = ops.einsum("bqhd,bkhd->bhqk", q * scale, k)
        probs = ops.softmax(ops.cast(scores, "float32") + bias, axis=-1)
        probs = self.attention_dropout(ops.cast(probs, v.dtype), training=training)
        context = ops.einsum("bhqk,bkhd->bqhd", probs, v)
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        context = ops.reshape(context, (batch, seq, self.hidden_size))
        out = self.output_dropout(self.output_dense(context), training=training)
        return self.layer_norm(x + out)

    def compute_output_shape(self, x_shape, input_mask_shape=None):
        return x_shape

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
        self.intermediate = _dense(intermediate_size, initializer_range, policy, "ffn",
                                   activation=get_activation(activation))
        self.output_dense = _dense(hidden_size, initializer_range, policy, "ffn_output")
        self.output_dropout = keras.layers.Dropout(hidden_dropout, dtype=policy)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="layer_norm")

    def build(self, x_shape):
        self.intermediate.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.intermediate_size))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, x, training=None):
        out = self.output_dense(self.intermediate(x))
        out = self.output_dropout(out, training=training)
        return self.layer_norm(x + out)

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

    def call(self, x, input_mask, training=None):
        return self.feed_forward(self.attention(x, input_mask, training=training),
                                 training=training)

    def compute_output_shape(self, x_shape, input_mask_shape=None):
        return x_shape

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
        self._schedule = []
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

    def call(self, x, input_mask, training=None, return_all_layers=False):
        """x: [batch, seq, H]; input_mask: [batch, seq] of 1 (token) / 0 (padding).

        Returns the last layer's output, or with return_all_layers a list of L + 1
        tensors: the input followed by every layer's output.
        """
        hidden_states = [x]
        step = 0
        for _ in range(self.num_layers):
            for _ in range(self.inner_group_num):
                x = self.blocks[self._schedule[step]](x, input_mask, training=training)
                step += 1
            hidden_states.append(x)
        return hidden_states if return_all_layers else x

    def compute_output_spec(self, x, input_mask, training=None, return_all_layers=False):
        spec = keras.KerasTensor(x.shape, dtype=self.compute_dtype)
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
