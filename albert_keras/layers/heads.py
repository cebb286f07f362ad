"""Heads on top of the encoder: pooler, masked-LM (tied output) and sentence order."""

import keras
from keras import ops

from albert_keras.layers.activation import get_activation
from albert_keras.layers.embedding import FactorizedEmbedding


def _initializer(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="albert_keras")
class Pooler(keras.layers.Layer):
    """Dense(H -> H, tanh) on the first ([CLS]) position."""

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_size, activation="tanh", kernel_initializer=_initializer(initializer_range),
            dtype=self.dtype_policy, name="dense")

    def build(self, sequence_output_shape):
        self.dense.build((None, sequence_output_shape[-1]))
        self.built = True

    def call(self, sequence_output):
        return self.dense(sequence_output[:, 0, :])

    def compute_output_shape(self, sequence_output_shape):
        return (sequence_output_shape[0], self.hidden_size)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class MaskedLMHead(keras.layers.Layer):
    """Gathers the masked positions, then Dense(H -> E, act) -> LayerNorm(E) ->
    logits = x . word_embeddings^T + bias[V], the output matrix tied to the input one
    (with the "words_first" embedding: Dense(H -> H), LayerNorm(H), then back through
    the transposed projection; embedding.mlm_width is that E or H).

    Only the P masked positions reach the vocabulary projection, not all seq positions.
    Logits are returned in float32.
    """

    def __init__(self, embedding, activation="gelu_tanh", layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if isinstance(embedding, dict):
            embedding = keras.saving.deserialize_keras_object(embedding)
        if not isinstance(embedding, FactorizedEmbedding):
            raise TypeError("MaskedLMHead needs the FactorizedEmbedding whose word matrix "
                            f"it shares, got {type(embedding).__name__}")
        self.embedding = embedding
        self.activation = activation
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            embedding.mlm_width, activation=get_activation(activation),
            kernel_initializer=_initializer(initializer_range), dtype=self.dtype_policy,
            name="dense")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm")

    def build(self, sequence_output_shape, masked_positions_shape=None):
        if not self.embedding.built:
            self.embedding.build(None)
        self.dense.build((None, None, sequence_output_shape[-1]))
        self.layer_norm.build((None, None, self.embedding.mlm_width))
        self.output_bias = self.add_weight(
            shape=(self.embedding.vocab_size,), initializer="zeros", name="output_bias")
        self.built = True

    def call(self, sequence_output, masked_positions=None):
        """sequence_output [batch, seq, H], masked_positions int [batch, P] -> [batch, P, V].

        Without masked_positions, sequence_output holds the masked rows already
        ([batch, P, H], as the pretrainer's encoder computes them).
        """
        gathered = sequence_output
        if masked_positions is not None:
            positions = ops.expand_dims(ops.cast(masked_positions, "int32"), -1)
            gathered = ops.take_along_axis(sequence_output, positions, axis=1)
        x = self.layer_norm(self.dense(gathered))
        logits = self.embedding.project_to_vocab(x)
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, sequence_output_shape, masked_positions_shape=None):
        rows = (masked_positions_shape or sequence_output_shape)[:2]
        return (*rows, self.embedding.vocab_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding=keras.saving.serialize_keras_object(self.embedding),
            activation=self.activation, layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range)
        return config


@keras.saving.register_keras_serializable(package="albert_keras")
class SentenceOrderHead(keras.layers.Layer):
    """Dropout then Dense(H -> 2) on the pooled output; class 0 = original order,
    1 = swapped. Logits are returned in float32."""

    def __init__(self, dropout=0.0, initializer_range=0.02, num_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.dropout_rate = dropout
        self.initializer_range = initializer_range
        self.num_classes = num_classes
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(
            num_classes, kernel_initializer=_initializer(initializer_range),
            dtype=self.dtype_policy, name="dense")

    def build(self, pooled_output_shape):
        self.dense.build((None, pooled_output_shape[-1]))
        self.built = True

    def call(self, pooled_output, training=None):
        logits = self.dense(self.dropout(pooled_output, training=training))
        return ops.cast(logits, "float32")

    def compute_output_shape(self, pooled_output_shape):
        return (pooled_output_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(dropout=self.dropout_rate, initializer_range=self.initializer_range,
                      num_classes=self.num_classes)
        return config
