"""from_tf1_checkpoint: a reference (google-research/albert) TF1 checkpoint -> AlbertPretrainer.

Variable names follow the reference modeling.py (see the project's reference notes):
bert/embeddings/..., bert/encoder/transformer/group_G/inner_group_K/..., bert/pooler/...,
cls/predictions/..., cls/seq_relationship/... TF1 dense kernels are already [in, out];
only cls/seq_relationship/output_weights is stored [2, H] and is transposed.
Optimizer slots (.../adam_m, .../adam_v) and global_step are skipped.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from albert_keras.config import AlbertConfig
from albert_keras.convert.weights import (
    ConversionError, Mapping, assign, dense, layer_norm, load_parts)
from albert_keras.models import AlbertPretrainer

_PROJECTION = "bert/encoder/embedding_hidden_mapping_in"
# Heads a checkpoint may lack (a fine-tuned one has no cls/ variables).
_OPTIONAL_PARTS = {
    "pooler": "bert/pooler/*",
    "mlm_head": "cls/predictions/*",
    "sop_head": "cls/seq_relationship/*",
    "embedding_projection": f"{_PROJECTION}/*",
}
_TRAINING_STATE_SUFFIXES = ("/adam_m", "/adam_v")
_TRAINING_STATE_NAMES = ("global_step", "_CHECKPOINTABLE_OBJECT_GRAPH")


def from_tf1_checkpoint(checkpoint_prefix, config_json) -> AlbertPretrainer:
    """Builds an AlbertPretrainer from a reference checkpoint.

    checkpoint_prefix: e.g. ".../model.ckpt-125000" (a directory takes its latest
    checkpoint). config_json: the reference albert_config.json, or an AlbertConfig.
    When E == H the reference has no embedding_hidden_mapping_in; our always-present
    projection is then set to the identity. Heads absent from the checkpoint stay
    freshly initialised, with a warning naming them.
    """
    import tensorflow as tf

    config = (config_json if isinstance(config_json, AlbertConfig)
              else AlbertConfig.from_json_file(config_json))
    origin = os.fspath(checkpoint_prefix)
    if origin.endswith(".index"):
        origin = origin[:-len(".index")]
    try:
        reader = tf.train.load_checkpoint(origin)
    except (tf.errors.OpError, ValueError) as error:
        raise FileNotFoundError(
            f"{origin}: not a readable TF checkpoint (give the prefix, e.g. "
            f"model.ckpt-125000): {error}") from error
    available = {name for name in reader.get_variable_to_shape_map()
                 if not _is_training_state(name)}

    pretrainer = AlbertPretrainer(config)
    absent, used = load_parts(
        _parts(pretrainer), optional=_OPTIONAL_PARTS, read=reader.get_tensor,
        available=available, origin=origin)
    if "embedding_projection" in absent:
        absent.remove("embedding_projection")
        _set_identity_projection(pretrainer, origin)
    if absent:
        heads = ", ".join(f"{part} ({_OPTIONAL_PARTS[part]})" for part in absent)
        warnings.warn(f"{origin} has no weights for {heads}: left freshly initialised",
                      stacklevel=2)
    unused = sorted(available - used)
    if unused:
        warnings.warn(f"{origin}: ignoring {len(unused)} variables that AlbertPretrainer "
                      f"does not have: {', '.join(unused[:10])}", stacklevel=2)
    return pretrainer


def _is_training_state(name: str) -> bool:
    return name in _TRAINING_STATE_NAMES or name.endswith(_TRAINING_STATE_SUFFIXES)


def _set_identity_projection(pretrainer: AlbertPretrainer, origin: str) -> None:
    projection = pretrainer.backbone.embedding.projection
    embedding_size, hidden_size = (int(d) for d in projection.kernel.shape)
    if embedding_size != hidden_size:
        raise ConversionError(
            f"{origin}: missing variable '{_PROJECTION}/kernel' (needed because "
            f"embedding_size {embedding_size} != hidden_size {hidden_size})")
    assign(projection.kernel, np.eye(hidden_size), f"identity for {_PROJECTION}/kernel")
    assign(projection.bias, np.zeros(hidden_size), f"zeros for {_PROJECTION}/bias")


def _parts(pretrainer: AlbertPretrainer) -> dict[str, list[Mapping]]:
    """Reference names -> our variables, grouped into the backbone and optional parts."""
    backbone = pretrainer.backbone
    config = backbone.config
    embedding, encoder = backbone.embedding, backbone.encoder
    mappings = [
        Mapping("bert/embeddings/word_embeddings", embedding.word_embeddings),
        Mapping("bert/embeddings/token_type_embeddings", embedding.token_type_embeddings),
        Mapping("bert/embeddings/position_embeddings", embedding.position_embeddings),
        *layer_norm("bert/embeddings/LayerNorm", embedding.layer_norm),
    ]
    for group in range(config.num_hidden_groups):
        for inner in range(config.inner_group_num):
            attention, feed_forward = encoder.group_sublayers(group, inner)
            block = f"bert/encoder/transformer/group_{group}/inner_group_{inner}"
            mappings += [
                *dense(f"{block}/attention_1/self/query", attention.query),
                *dense(f"{block}/attention_1/self/key", attention.key),
                *dense(f"{block}/attention_1/self/value", attention.value),
                *dense(f"{block}/attention_1/output/dense", attention.output_dense),
                *layer_norm(f"{block}/LayerNorm", attention.layer_norm),
                *dense(f"{block}/ffn_1/intermediate/dense", feed_forward.intermediate),
                *dense(f"{block}/ffn_1/intermediate/output/dense", feed_forward.output_dense),
                *layer_norm(f"{block}/LayerNorm_1", feed_forward.layer_norm),
            ]
    mlm, sop = pretrainer.mlm_head, pretrainer.sop_head
    return {
        "backbone": mappings,
        "embedding_projection": dense(_PROJECTION, embedding.projection),
        "pooler": dense("bert/pooler/dense", backbone.pooler.dense),
        "mlm_head": [*dense("cls/predictions/transform/dense", mlm.dense),
                     *layer_norm("cls/predictions/transform/LayerNorm", mlm.layer_norm),
                     Mapping("cls/predictions/output_bias", mlm.output_bias)],
        "sop_head": [Mapping("cls/seq_relationship/output_weights", sop.dense.kernel,
                             transpose=True),
                     Mapping("cls/seq_relationship/output_bias", sop.dense.bias)],
    }
