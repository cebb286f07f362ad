"""ALBERT's factorized embedding: V x E lookups, then one dense E -> H projection."""

import keras
from keras import ops



@keras.saving.register_keras_serializable(package="albert_keras")
class FactorizedEmbedding(keras.layers.Layer):
    """word (V x E) + token type (T x E) + learned absolute position (P x E), summed,
    LayerNorm over E, dropout, then a dense E -> H projection with bias.

    The projection is always present (as in transformers and keras-hub); the reference
    omits it when E == H, which converters express as an identity kernel.
    project_to_vocab() gives logits against the word matrix for the tied MLM output.
    """

    def __init__(self, vocab_size, embedding_size, hidden_size, type_vocab_size=2,
                 max_position_embeddings=512, dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.type_vocab_size = type_vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.dropout_rate = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm")
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")
        self.projection = keras.layers.Dense(
            hidden_size, kernel_initializer=self._initializer(), dtype=self.dtype_policy,
            name="embedding_hidden_mapping_in")

    def _initializer(self):
        return keras.initializers.TruncatedNormal(stddev=self.initializer_range)

    def build(self, input_ids_shape=None, segment_ids_shape=None):
        # autocast=False: the tables are read as stored (float32). Rows are gathered
        # first and cast after; Keras' autocast would cast every row of the V x E
        # matrix at each call.
        self.word_embeddings = self.add_weight(
            shape=(self.vocab_size, self.embedding_size), initializer=self._initializer(),
            name="word_embeddings", autocast=False)
        self.token_type_embeddings = self.add_weight(
            shape=(self.type_vocab_size, self.embedding_size),
            initializer=self._initializer(), name="token_type_embeddings", autocast=False)
        self.position_embeddings = self.add_weight(
            shape=(self.max_position_embeddings, self.embedding_size),
            initializer=self._initializer(), name="position_embeddings", autocast=False)
        self.layer_norm.build((None, None, self.embedding_size))
        self.projection.build((None, None, self.embedding_size))
        self.built = True

    def call(self, input_ids, segment_ids, training=None):
        seq_length = ops.shape(input_ids)[1]
        words = ops.take(self.word_embeddings, input_ids, axis=0)
        types = ops.take(self.token_type_embeddings, segment_ids, axis=0)
        positions = ops.convert_to_tensor(self.position_embeddings)[:seq_length]
        x = words + types + ops.expand_dims(positions, 0)  # LayerNorm computes in float32
        x = self.layer_norm(x)
        x = self.dropout(x, training=training)
        return self.projection(x)

    def project_to_vocab(self, x):
        """[..., E] -> [..., V] logits against the (tied) word-embedding matrix."""
        return ops.matmul(x, ops.transpose(ops.cast(self.word_embeddings, x.dtype)))

    def compute_output_shape(self, input_ids_shape, segment_ids_shape=None):
        return tuple(input_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, embedding_size=self.embedding_size,
            hidden_size=self.hidden_size, type_vocab_size=self.type_vocab_size,
            max_position_embeddings=self.max_position_embeddings, dropout=self.dropout_rate,
            layer_norm_eps=self.layer_norm_eps, initializer_range=self.initializer_range)
        return config
