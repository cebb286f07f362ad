"""What the two sub-layers of a block share: their weights (DenseWeights, LayerNormWeights),
the residual projection with its LayerNorm (ResidualSubLayer), and the small helpers the
block and the encoder use too (dropout with an optional seed, the output shape when only
some rows are computed)."""

import keras
import tensorflow as tf

from albert_keras.config import check_fusion
from albert_keras.layers import fused_ops


def output_shape(x_shape, positions=None):
    """[batch, seq, H], or [batch, P, H] when only `positions` [batch, P] are computed."""
    if positions is None:
        return tuple(x_shape)
    return (x_shape[0], positions.shape[1], x_shape[-1])


def truncated_normal(stddev):
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
        self.kernel_initializer = truncated_normal(initializer_range)

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


def projection_kernels_in(layer, dtype):
    """layer.projection_kernels() in dtype, for a sub-layer called on its own."""
    return {name: tf.cast(kernel, dtype) for name, kernel in layer.projection_kernels().items()}


@tf.custom_gradient
def with_zero_gradient_for(x, unused):
    """x as it is; `unused` (a weight x does not depend on) gets the gradient zero."""
    return tf.identity(x), lambda upstream: (upstream, tf.zeros_like(unused))


def apply_dropout(layer, x, training, seed=None):
    """keras Dropout `layer` on x. With `seed` (int [2]) the mask is a stateless draw
    from it: a block recomputed in the backward pass (remat) draws the same mask."""
    if seed is None or not training or layer.rate == 0:
        return layer(x, training=training)
    return tf.nn.experimental.stateless_dropout(x, layer.rate, seed=seed)


def split_seed(seed, parts):
    """`parts` independent seeds from one (or Nones without one)."""
    if seed is None:
        return [None] * parts
    return tf.unstack(tf.random.experimental.stateless_split(seed, parts))


class ResidualSubLayer(keras.layers.Layer):
    """What both sub-layers share: an output projection, then
    out = LayerNorm(x + Dropout(h Wout + bout)).
    """

    def __init__(self, hidden_size, hidden_dropout, layer_norm_eps, initializer_range,
                 fusion, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.hidden_dropout_rate = hidden_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.fusion = check_fusion(fusion, f"{type(self).__name__} fusion")

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
            out = apply_dropout(self.output_dropout, tf.nn.bias_add(out, tf.cast(bias, out.dtype)),
                           training, dropout_seed)
            bias = None
        out = fused_ops.residual_layer_norm(
            tf.reshape(x, (-1, self.hidden_size)), out, bias, self.layer_norm.gamma,
            self.layer_norm.beta, self.layer_norm_eps, self.fusion)
        return tf.reshape(out, tf.shape(x))

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, hidden_dropout=self.hidden_dropout_rate,
                      layer_norm_eps=self.layer_norm_eps,
                      initializer_range=self.initializer_range, fusion=self.fusion)
        return config
