"""The post-LN transformer block: SelfAttention then FeedForward, each ending in its
own residual LayerNorm."""

import keras

from albert_keras.config import check_fusion
from albert_keras.layers.attention import SelfAttention
from albert_keras.layers.feed_forward import FeedForward
from albert_keras.layers.sublayer import output_shape, split_seed


@keras.saving.register_keras_serializable(package="albert_keras")
class TransformerBlock(keras.layers.Layer):
    """A post-LN encoder block: SelfAttention then FeedForward.

    attention / feed_forward may be given as existing sub-layers to share them with
    other blocks; a block built that way is serialized by its owner (SharedEncoder),
    which rebuilds the same sharing from its own config.
    """

    def __init__(self, hidden_size, num_attention_heads, intermediate_size,
                 activation="gelu_tanh", hidden_dropout=0.0, attention_dropout=0.0,
                 layer_norm_eps=1e-12, initializer_range=0.02, fusion="plain",
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
        self.fusion = check_fusion(fusion, "TransformerBlock fusion")
        self.attention = attention or SelfAttention(
            hidden_size, num_attention_heads, attention_dropout=attention_dropout,
            hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range, fusion=fusion, dtype=self.dtype_policy,
            name="attention")
        self.feed_forward = feed_forward or FeedForward(
            hidden_size, intermediate_size, activation=activation,
            hidden_dropout=hidden_dropout, layer_norm_eps=layer_norm_eps,
            initializer_range=initializer_range, fusion=fusion, dtype=self.dtype_policy,
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
        attention_seed, feed_forward_seed = split_seed(dropout_seed, 2)
        x = self.attention(x, input_mask, training=training, cast_kernels=attention_kernels,
                           query_positions=query_positions, dropout_seed=attention_seed)
        return self.feed_forward(x, training=training, cast_kernels=feed_forward_kernels,
                                 dropout_seed=feed_forward_seed)

    def compute_output_spec(self, x, input_mask, training=None, cast_kernels=None,
                            query_positions=None, dropout_seed=None):
        return keras.KerasTensor(output_shape(x.shape, query_positions),
                                 dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size, activation=self.activation,
            hidden_dropout=self.hidden_dropout_rate,
            attention_dropout=self.attention_dropout_rate, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range, fusion=self.fusion)
        return config
