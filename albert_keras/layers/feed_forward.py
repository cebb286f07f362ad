"""The feed-forward sub-layer: Dense(H -> I, activation) -> Dense(I -> H), then the
residual LayerNorm."""

import keras
import tensorflow as tf

from albert_keras.layers import fused_ops
from albert_keras.layers.activation import get_activation
from albert_keras.layers.sublayer import (DenseWeights, LayerNormWeights, ResidualSubLayer,
                                          projection_kernels_in)


@keras.saving.register_keras_serializable(package="albert_keras")
class FeedForward(ResidualSubLayer):
    """out = LayerNorm(h + Dropout(Dense(I -> H)(act(Dense(H -> I)(h)))))."""

    PROJECTIONS = ("intermediate", "output_dense")

    def __init__(self, hidden_size, intermediate_size, activation="gelu_tanh",
                 hidden_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02,
                 fusion="plain", **kwargs):
        super().__init__(hidden_size, hidden_dropout, layer_norm_eps, initializer_range,
                         fusion, **kwargs)
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
        matrices = cast_kernels or projection_kernels_in(self, self.compute_dtype)
        x = tf.cast(x, self.compute_dtype)
        x2d = tf.reshape(x, (-1, self.hidden_size))
        h = fused_ops.bias_activation(tf.matmul(x2d, matrices["intermediate"]),
                                      self.intermediate.bias, self.activation, self.fusion)
        return self._add_and_normalize(x, h, matrices["output_dense"], training,
                                       dropout_seed=dropout_seed)

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(intermediate_size=self.intermediate_size, activation=self.activation)
        return config
