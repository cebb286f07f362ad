"""from_keras_hub: a keras_hub.models.AlbertBackbone's weights -> our AlbertBackbone.

keras-hub keeps each block as a TransformerEncoder (post-LN, tanh GELU, epsilon 1e-12)
whose attention is keras.layers.MultiHeadAttention with per-head EinsumDense kernels:
query/key/value [H, heads, head_size] and output [heads, head_size, H]. They are
flattened to our [H, H] kernels (head-major, as our attention splits heads). The
TransformerEncoder sub-layers are private attributes (_self_attention_layer, ...);
this module is the one place that depends on them.
"""

from __future__ import annotations

import keras

from albert_keras.config import AlbertConfig
from albert_keras.convert.weights import assign
from albert_keras.models import AlbertBackbone


def from_keras_hub(backbone) -> AlbertBackbone:
    """Builds our AlbertBackbone with the weights of a keras_hub AlbertBackbone.

    backbone: a keras_hub.models.AlbertBackbone, or a preset name / directory that
    keras_hub.models.AlbertBackbone.from_preset loads.
    """
    import keras_hub

    if isinstance(backbone, str):
        backbone = keras_hub.models.AlbertBackbone.from_preset(backbone)
    if not isinstance(backbone, keras_hub.models.AlbertBackbone):
        raise TypeError(
            f"from_keras_hub needs a keras_hub.models.AlbertBackbone, got {type(backbone).__name__}")
    config = config_from_keras_hub(backbone)
    ours = AlbertBackbone(config)

    embedding = ours.embedding
    _copy(backbone.token_embedding.embeddings, embedding.word_embeddings)
    _copy(backbone.segment_embedding.embeddings, embedding.token_type_embeddings)
    _copy(backbone.position_embedding.position_embeddings, embedding.position_embeddings)
    _copy_layer_norm(backbone.embeddings_layer_norm, embedding.layer_norm)
    _copy_dense(backbone.embeddings_projection, embedding.projection)
    hidden_size = config.hidden_size
    for group, inner_layers in enumerate(backbone.transformer_layers):
        for inner, block in enumerate(inner_layers):
            attention, feed_forward = ours.encoder.group_sublayers(group, inner)
            mha = block._self_attention_layer
            for source, target in ((mha._query_dense, attention.query),
                                   (mha._key_dense, attention.key),
                                   (mha._value_dense, attention.value)):
                _copy(source.kernel, target.kernel, (hidden_size, -1))
                _copy(source.bias, target.bias, (-1,))
            _copy(mha._output_dense.kernel, attention.output_dense.kernel, (-1, hidden_size))
            _copy(mha._output_dense.bias, attention.output_dense.bias)
            _copy_layer_norm(block._self_attention_layer_norm, attention.layer_norm)
            _copy_dense(block._feedforward_intermediate_dense, feed_forward.intermediate)
            _copy_dense(block._feedforward_output_dense, feed_forward.output_dense)
            _copy_layer_norm(block._feedforward_layer_norm, feed_forward.layer_norm)
    _copy_dense(backbone.pooled_dense, ours.pooler.dense)
    return ours


def config_from_keras_hub(backbone) -> AlbertConfig:
    """Our config for a keras-hub AlbertBackbone (whose activation is always tanh GELU
    and whose one dropout rate serves both hidden and attention dropout)."""
    return AlbertConfig(
        vocab_size=backbone.vocabulary_size, embedding_size=backbone.embedding_dim,
        hidden_size=backbone.hidden_dim, num_hidden_layers=backbone.num_layers,
        num_hidden_groups=backbone.num_groups,
        inner_group_num=backbone.num_inner_repetitions,
        num_attention_heads=backbone.num_heads, intermediate_size=backbone.intermediate_dim,
        hidden_act="gelu_tanh", hidden_dropout_prob=backbone.dropout,
        attention_probs_dropout_prob=backbone.dropout,
        max_position_embeddings=backbone.max_sequence_length,
        type_vocab_size=backbone.num_segments, layer_norm_eps=1e-12)


def _copy(source, target, shape=None):
    value = keras.ops.convert_to_numpy(source)
    if shape is not None:
        value = value.reshape(shape)
    assign(target, value, source.path)


def _copy_dense(source, target):
    _copy(source.kernel, target.kernel)
    _copy(source.bias, target.bias)


def _copy_layer_norm(source, target):
    _copy(source.gamma, target.gamma)
    _copy(source.beta, target.beta)
