"""ALBERT's factorized embedding: V x E lookups and one E -> H projection, where the
reference puts it ("after_norm") or where brightmart/albert_zh does ("words_first");
albert_keras.config.EMBEDDING_PROJECTIONS states both."""

import keras
from keras import ops



@keras.saving.register_keras_serializable(package="albert_keras")
class FactorizedEmbedding(keras.layers.Layer):
    """projection="after_norm" (the reference): word (V x E) + token type (T x E) +
    learned absolute position (P x E), summed, LayerNorm over E, dropout, then a dense
    E -> H projection with bias. projection="words_first" (brightmart/albert_zh): the
    word rows projected E -> H without bias, + token type (T x H) + position (P x H),
    LayerNorm over H, dropout.

    The projection is always present (as in transformers and keras-hub); the reference
    omits it when E == H, which converters express as an identity kernel.
    project_to_vocab() gives logits against the word matrix for the tied MLM output,
    from vectors of width mlm_width.
    """

    def __init__(self, vocab_size, embedding_size, hidden_size, type_vocab_size=2,
                 max_position_embeddings=512, dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, projection="after_norm", **kwargs):
        super().__init__(**kwargs)
        self.projection_order = projection
        words_first = projection == "words_first"
        # The width the position and token-type tables, the LayerNorm and the MLM
        # head's output work at.
        self.summed_size = hidden_size if words_first else embedding_size
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
            hidden_size, use_bias=not words_first, kernel_initializer=self._initializer(),
            dtype=self.dtype_policy, name="embedding_hidden_mapping_in")

    @property
    def mlm_width(self) -> int:
        """The width of the vectors project_to_vocab scores."""
        return self.summed_size

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
            shape=(self.type_vocab_size, self.summed_size),
            initializer=self._initializer(), name="token_type_embeddings", autocast=False)
        self.position_embeddings = self.add_weight(
            shape=(self.max_position_embeddings, self.summed_size),
            initializer=self._initializer(), name="position_embeddings", autocast=False)
        self.layer_norm.build((None, None, self.summed_size))
        self.projection.build((None, None, self.embedding_size))
        self.built = True

    def call(self, input_ids, segment_ids, training=None):
        seq_length = ops.shape(input_ids)[1]
        words = ops.take(self.word_embeddings, input_ids, axis=0)
        types = ops.take(self.token_type_embeddings, segment_ids, axis=0)
        positions = ops.convert_to_tensor(self.position_embeddings)[:seq_length]
        if self.projection_order == "words_first":
            words = self.projection(words)
        x = words + types + ops.expand_dims(positions, 0)  # LayerNorm computes in float32
        x = self.layer_norm(x)
        x = self.dropout(x, training=training)
        if self.projection_order == "words_first":
            return x
        return self.projection(x)

    def project_to_vocab(self, x):
        """[..., mlm_width] -> [..., V] logits against the (tied) word-embedding matrix;
        with "words_first" through the transposed projection first (H -> E)."""
        if self.projection_order == "words_first":
            x = ops.matmul(x, ops.transpose(ops.cast(self.projection.kernel, x.dtype)))
        return ops.matmul(x, ops.transpose(ops.cast(self.word_embeddings, x.dtype)))

    def compute_output_shape(self, input_ids_shape, segment_ids_shape=None):
        return tuple(input_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, embedding_size=self.embedding_size,
            hidden_size=self.hidden_size, type_vocab_size=self.type_vocab_size,
            max_position_embeddings=self.max_position_embeddings, dropout=self.dropout_rate,
            layer_norm_eps=self.layer_norm_eps, initializer_range=self.initializer_range,
            projection=self.projection_order)
        return config
