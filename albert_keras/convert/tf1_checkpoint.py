"""Reference (google-research/albert) TF1 checkpoints -> our models:
from_tf1_checkpoint (a pretraining checkpoint -> AlbertPretrainer) and
squad2_answerer_from_tf1_checkpoint (a run_squad_v2.py one -> AlbertSquad2Answerer).
from_tf1_checkpoint also reads brightmart/albert_zh checkpoints (their layout below),
as a model with config.embedding_projection = "words_first".

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
from albert_keras.models import AlbertPretrainer, AlbertSquad2Answerer

_PROJECTION = "bert/encoder/embedding_hidden_mapping_in"
# Parts a checkpoint may lack (a fine-tuned one has no cls/ variables).
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
    checkpoint = _Checkpoint(checkpoint_prefix)
    config = _read_config(config_json)
    brightmart = checkpoint.is_brightmart()
    if brightmart:
        config = _brightmart_config(config, config_json, checkpoint)
    pretrainer = AlbertPretrainer(config)
    mlm, sop = pretrainer.mlm_head, pretrainer.sop_head
    checkpoint.load(pretrainer, {
        **(_brightmart_backbone_parts if brightmart else _backbone_parts)(pretrainer.backbone),
        "mlm_head": [*dense("cls/predictions/transform/dense", mlm.dense),
                     *layer_norm("cls/predictions/transform/LayerNorm", mlm.layer_norm),
                     Mapping("cls/predictions/output_bias", mlm.output_bias)],
        "sop_head": [Mapping("cls/seq_relationship/output_weights", sop.dense.kernel,
                             transpose=True),
                     Mapping("cls/seq_relationship/output_bias", sop.dense.bias)],
    })
    return pretrainer


def squad2_answerer_from_tf1_checkpoint(checkpoint_prefix, config_json, start_n_top=5,
                                        end_n_top=5) -> AlbertSquad2Answerer:
    """Builds an AlbertSquad2Answerer from a checkpoint of the reference's SQuAD 2.0
    fine-tuning (run_squad_v2.py): the backbone as from_tf1_checkpoint reads it, and the
    head of squad_utils.create_v2_model, whose tf.layers.dense calls inside the scopes
    start_logits, end_logits and answer_class name its variables. A checkpoint without
    them (e.g. a pretrained one: fine-tune from from_tf1_checkpoint(...).backbone
    instead) is a ConversionError naming the missing variables.
    """
    checkpoint = _Checkpoint(checkpoint_prefix)
    model = AlbertSquad2Answerer(_read_config(config_json), start_n_top=start_n_top,
                                 end_n_top=end_n_top)
    head = model.head
    checkpoint.load(model, {
        **_backbone_parts(model.backbone),
        "squad2_head": [
            *dense("start_logits/dense", head.start_dense),
            *dense("end_logits/dense_0", head.end_dense_0),
            *layer_norm("end_logits/LayerNorm", head.end_layer_norm),
            *dense("end_logits/dense_1", head.end_dense_1),
            *dense("answer_class/dense_0", head.answer_dense_0),
            Mapping("answer_class/dense_1/kernel", head.answer_dense_1.kernel),
        ],
    })
    return model


def _read_config(config_json) -> AlbertConfig:
    return (config_json if isinstance(config_json, AlbertConfig)
            else AlbertConfig.from_json_file(config_json))


class _Checkpoint:
    """A reference checkpoint's variables, less the training state."""

    def __init__(self, checkpoint_prefix):
        import tensorflow as tf

        origin = os.fspath(checkpoint_prefix)
        if origin.endswith(".index"):
            origin = origin[:-len(".index")]
        try:
            self.reader = tf.train.load_checkpoint(origin)
        except (tf.errors.OpError, ValueError) as error:
            raise FileNotFoundError(
                f"{origin}: not a readable TF checkpoint (give the prefix, e.g. "
                f"model.ckpt-125000): {error}") from error
        self.origin = origin
        self.available = {name for name in self.reader.get_variable_to_shape_map()
                          if not _is_training_state(name)}

    def shape(self, name: str) -> list:
        if name not in self.available:
            raise ConversionError(f"{self.origin}: missing variable '{name}'")
        return self.reader.get_variable_to_shape_map()[name]

    def is_brightmart(self) -> bool:
        return any(name.startswith(_BRIGHTMART_NAMES) for name in self.available)

    def load(self, model, parts: dict[str, list[Mapping]]) -> None:
        """Assigns the parts (_OPTIONAL_PARTS may be absent: warned about, or for the
        projection replaced by the identity); warns about variables left unread."""
        origin = self.origin
        absent, used = load_parts(
            parts, optional=_OPTIONAL_PARTS, read=self.reader.get_tensor,
            available=self.available, origin=origin)
        if "embedding_projection" in absent:
            absent.remove("embedding_projection")
            _set_identity_projection(model.backbone, origin)
        if absent:
            heads = ", ".join(f"{part} ({_OPTIONAL_PARTS[part]})" for part in absent)
            warnings.warn(f"{origin} has no weights for {heads}: left freshly initialised",
                          stacklevel=3)
        unused = sorted(self.available - used)
        if unused:
            warnings.warn(f"{origin}: ignoring {len(unused)} variables that "
                          f"{type(model).__name__} does not have: {', '.join(unused[:10])}",
                          stacklevel=3)


# brightmart/albert_zh's layout (its modeling.py and run_pretraining.py): the word
# embeddings [V, E] are projected to H by word_embeddings_2 [E, H] (no bias) before the
# position and token-type embeddings ([P, H], [2, H]) are added and LayerNorm'd at H; one
# BERT-named post-LN block under encoder/layer_shared serves every layer; the MLM
# transform is H -> H with LayerNorm at H, and the output goes back through the
# transposed projection to the word matrix.
_BRIGHTMART_NAMES = ("bert/embeddings/word_embeddings_2", "bert/encoder/layer_shared/")
_BRIGHTMART_BLOCK = "bert/encoder/layer_shared"


def _brightmart_config(config: AlbertConfig, config_json, checkpoint) -> AlbertConfig:
    """The config for a brightmart checkpoint: one shared block, words_first, and the
    embedding size its word table has (some of its modeling.py versions built E = H
    whatever embedding_size said)."""
    import dataclasses
    import json

    if not isinstance(config_json, AlbertConfig):
        with open(config_json, encoding="utf-8") as f:
            ln_type = json.load(f).get("ln_type", "postln")
        if ln_type != "postln":
            raise ConversionError(
                f"{config_json}: ln_type {ln_type!r}: only brightmart's post-LayerNorm "
                f"blocks (postln, the reference's and its released checkpoints') convert")
    embedding_size = checkpoint.shape("bert/embeddings/word_embeddings")[1]
    return dataclasses.replace(config, num_hidden_groups=1, inner_group_num=1,
                               embedding_size=int(embedding_size),
                               embedding_projection="words_first")


def _brightmart_backbone_parts(backbone) -> dict[str, list[Mapping]]:
    embedding, encoder = backbone.embedding, backbone.encoder
    attention, feed_forward = encoder.group_sublayers(0, 0)
    block = _BRIGHTMART_BLOCK
    return {
        "backbone": [
            Mapping("bert/embeddings/word_embeddings", embedding.word_embeddings),
            Mapping("bert/embeddings/word_embeddings_2", embedding.projection.kernel),
            Mapping("bert/embeddings/token_type_embeddings", embedding.token_type_embeddings),
            Mapping("bert/embeddings/position_embeddings", embedding.position_embeddings),
            *layer_norm("bert/embeddings/LayerNorm", embedding.layer_norm),
            *dense(f"{block}/attention/self/query", attention.query),
            *dense(f"{block}/attention/self/key", attention.key),
            *dense(f"{block}/attention/self/value", attention.value),
            *dense(f"{block}/attention/output/dense", attention.output_dense),
            *layer_norm(f"{block}/attention/output/LayerNorm", attention.layer_norm),
            *dense(f"{block}/intermediate/dense", feed_forward.intermediate),
            *dense(f"{block}/output/dense", feed_forward.output_dense),
            *layer_norm(f"{block}/output/LayerNorm", feed_forward.layer_norm),
        ],
        "pooler": dense("bert/pooler/dense", backbone.pooler.dense),
    }


def _is_training_state(name: str) -> bool:
    return name in _TRAINING_STATE_NAMES or name.endswith(_TRAINING_STATE_SUFFIXES)


def _set_identity_projection(backbone, origin: str) -> None:
    projection = backbone.embedding.projection
    embedding_size, hidden_size = (int(d) for d in projection.kernel.shape)
    if embedding_size != hidden_size:
        raise ConversionError(
            f"{origin}: missing variable '{_PROJECTION}/kernel' (needed because "
            f"embedding_size {embedding_size} != hidden_size {hidden_size})")
    assign(projection.kernel, np.eye(hidden_size), f"identity for {_PROJECTION}/kernel")
    assign(projection.bias, np.zeros(hidden_size), f"zeros for {_PROJECTION}/bias")


def _backbone_parts(backbone) -> dict[str, list[Mapping]]:
    """Reference names -> the backbone's variables: the required "backbone" part and the
    optional projection and pooler."""
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
    return {
        "backbone": mappings,
        "embedding_projection": dense(_PROJECTION, embedding.projection),
        "pooler": dense("bert/pooler/dense", backbone.pooler.dense),
    }
