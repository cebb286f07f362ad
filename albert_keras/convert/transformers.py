"""from_transformers: a Hugging Face transformers ALBERT directory -> our model.

Reads what save_pretrained writes: config.json plus model.safetensors (or its sharded
index) or pytorch_model.bin. By config.json's "architectures":
- AlbertModel, AlbertForPreTraining, AlbertForMaskedLM -> AlbertPretrainer;
- AlbertForTokenClassification -> AlbertTagger (tags from id2label);
- AlbertForQuestionAnswering -> AlbertQuestionAnswerer (the span head, qa_outputs);
- AlbertForSequenceClassification -> AlbertClassifier (labels from id2label; problem_type
  "regression" or num_labels 1 -> a regression head).
Keys carry an "albert." prefix in the models with heads and none in AlbertModel. Torch
Linear weights are [out, in] and are transposed for Keras.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from albert_keras.config import AlbertConfig
from albert_keras.convert.weights import ConversionError, Mapping, dense, layer_norm, load_parts
from albert_keras.models import (AlbertClassifier, AlbertPretrainer, AlbertQuestionAnswerer,
                                 AlbertTagger)

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
PYTORCH_NAME = "pytorch_model.bin"

# Heads a saved model may lack, with the keys that hold them ({p}: "albert." or "").
_OPTIONAL_PARTS = {
    "pooler": "{p}pooler.*",
    "mlm_head": "predictions.*",
    "sop_head": "sop_classifier.*",
}
# The MLM decoder is tied to the word embeddings and its bias to predictions.bias;
# both copies are checked, then not loaded twice.
_TIED_DECODER_WEIGHT = "predictions.decoder.weight"
_TIED_DECODER_BIAS = "predictions.decoder.bias"


def from_transformers(directory):
    """Builds our model of a transformers save_pretrained directory (module docstring).

    Pretraining heads missing from the file (AlbertModel has no MLM/SOP heads,
    AlbertForMaskedLM no pooler or SOP head) stay freshly initialised, with a warning
    naming them. A file that does not fit (missing variables, wrong shapes, another
    architecture) raises ConversionError naming the variable.
    """
    directory = os.fspath(directory)
    config_path = os.path.join(directory, CONFIG_NAME)
    config = AlbertConfig.from_json_file(config_path)
    with open(config_path, encoding="utf-8") as f:
        raw_config = json.load(f)
    architecture = (raw_config.get("architectures") or ["AlbertForPreTraining"])[0]
    arrays, origin = read_state_dict(directory)
    prefix = "albert." if any(key.startswith("albert.") for key in arrays) else ""

    if architecture in _TASK_HEADS:
        model = _task_model(architecture, config, raw_config, config_path)
        head = (_linear("qa_outputs", model.qa_outputs)
                if architecture == "AlbertForQuestionAnswering"
                else _linear("classifier", model.classifier))
        parts = {"backbone": _backbone_mappings(model.backbone, prefix), "head": head}
        if architecture == "AlbertForSequenceClassification":
            parts["pooler"] = _linear(f"{prefix}pooler", model.backbone.pooler.dense)
        absent, used = load_parts(parts, optional=(), read=arrays.__getitem__,
                                  available=set(arrays), origin=origin)
    else:
        _resolve_tied_decoder(arrays, prefix, origin)
        model = AlbertPretrainer(config)
        absent, used = load_parts(
            _pretraining_parts(model, prefix), optional=_OPTIONAL_PARTS,
            read=arrays.__getitem__, available=set(arrays), origin=origin)
        if absent:
            heads = ", ".join(f"{part} ({_OPTIONAL_PARTS[part].format(p=prefix)})"
                              for part in absent)
            warnings.warn(f"{origin} has no weights for {heads}: left freshly initialised",
                          stacklevel=2)
    unused = sorted(key for key in arrays if key not in used and not _is_ignorable(key))
    if unused:
        warnings.warn(f"{origin}: ignoring {len(unused)} variables that "
                      f"{type(model).__name__} does not have: {', '.join(unused[:10])}",
                      stacklevel=2)
    return model


_TASK_HEADS = ("AlbertForTokenClassification", "AlbertForSequenceClassification",
               "AlbertForQuestionAnswering")


def _label_names(raw_config: dict, count: int, config_path: str) -> list:
    """id2label in id order (transformers writes "LABEL_0", ... when none was given)."""
    id2label = raw_config.get("id2label") or {}
    try:
        names = [str(id2label[str(i)] if str(i) in id2label else id2label[i])
                 for i in range(count)]
    except KeyError:
        raise ConversionError(f"{config_path}: id2label does not name ids 0..{count - 1}") \
            from None
    return names


def _task_model(architecture: str, config, raw_config: dict, config_path: str):
    if architecture == "AlbertForQuestionAnswering":
        return AlbertQuestionAnswerer(config)
    count = raw_config.get("num_labels") or len(raw_config.get("id2label") or {}) or 2
    dropout = raw_config.get("classifier_dropout_prob", 0.1)
    if architecture == "AlbertForTokenClassification":
        return AlbertTagger(config, tag_names=_label_names(raw_config, count, config_path),
                            dropout=dropout)
    if raw_config.get("problem_type") == "regression" or count == 1:
        return AlbertClassifier(config, task_type="regression", dropout=dropout)
    return AlbertClassifier(config, num_labels=count, dropout=dropout,
                            label_names=_label_names(raw_config, count, config_path))


def read_state_dict(directory: str) -> tuple[dict[str, np.ndarray], str]:
    """Name -> numpy array for the weights in a save_pretrained directory,
    and the path they came from."""
    path = os.path.join(directory, SAFETENSORS_NAME)
    if os.path.exists(path):
        return _read_safetensors(path), path
    index = os.path.join(directory, SAFETENSORS_INDEX_NAME)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        arrays = {}
        for shard in shards:
            arrays.update(_read_safetensors(os.path.join(directory, shard)))
        return arrays, index
    path = os.path.join(directory, PYTORCH_NAME)
    if os.path.exists(path):
        return _read_pytorch(path), path
    raise FileNotFoundError(
        f"{directory}: no {SAFETENSORS_NAME}, {SAFETENSORS_INDEX_NAME} or {PYTORCH_NAME}")


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="np") as f:
            return {key: f.get_tensor(key) for key in f.keys()}
    except TypeError:
        # numpy has no bfloat16: read through torch and widen to float32.
        torch = _import_torch(path)
        with safe_open(path, framework="pt") as f:
            return {key: _torch_to_numpy(torch, f.get_tensor(key)) for key in f.keys()}


def _read_pytorch(path: str) -> dict[str, np.ndarray]:
    torch = _import_torch(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {key: _torch_to_numpy(torch, value) for key, value in state.items()}


def _import_torch(path: str):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading {path} needs PyTorch (pip install torch), or re-save the model with "
            "save_pretrained(..., safe_serialization=True) in float32/float16 to get a "
            "model.safetensors that numpy reads") from error
    return torch


def _torch_to_numpy(torch, tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def _resolve_tied_decoder(arrays: dict, prefix: str, origin: str) -> None:
    """Checks the MLM decoder copies equal what they are tied to; fills predictions.bias
    from the decoder bias when only the latter was saved."""
    words = arrays.get(f"{prefix}embeddings.word_embeddings.weight")
    decoder = arrays.get(_TIED_DECODER_WEIGHT)
    if decoder is not None and words is not None and (
            decoder.shape != words.shape or not np.array_equal(decoder, words)):
        raise ConversionError(
            f"{origin}: variable {_TIED_DECODER_WEIGHT!r} differs from "
            f"'{prefix}embeddings.word_embeddings.weight'; ALBERT ties them "
            "(tie_word_embeddings=False is not supported)")
    decoder_bias = arrays.get(_TIED_DECODER_BIAS)
    if decoder_bias is not None:
        bias = arrays.setdefault("predictions.bias", decoder_bias)
        if bias.shape != decoder_bias.shape or not np.array_equal(bias, decoder_bias):
            raise ConversionError(
                f"{origin}: variable {_TIED_DECODER_BIAS!r} differs from 'predictions.bias'")


def _is_ignorable(key: str) -> bool:
    return key in (_TIED_DECODER_WEIGHT, _TIED_DECODER_BIAS) or key.endswith("position_ids")


def _linear(prefix, layer):
    return dense(prefix, layer, "weight", "bias", transpose=True, separator=".")


def _norm(prefix, layer):
    return layer_norm(prefix, layer, "weight", "bias", separator=".")


def _backbone_mappings(backbone, p: str) -> list[Mapping]:
    """transformers names -> the backbone's variables ({p}: "albert." or "")."""
    config = backbone.config
    embedding, encoder = backbone.embedding, backbone.encoder
    mappings = [
        Mapping(f"{p}embeddings.word_embeddings.weight", embedding.word_embeddings),
        Mapping(f"{p}embeddings.token_type_embeddings.weight", embedding.token_type_embeddings),
        Mapping(f"{p}embeddings.position_embeddings.weight", embedding.position_embeddings),
        *_norm(f"{p}embeddings.LayerNorm", embedding.layer_norm),
        *_linear(f"{p}encoder.embedding_hidden_mapping_in", embedding.projection),
    ]
    for group in range(config.num_hidden_groups):
        for inner in range(config.inner_group_num):
            attention, feed_forward = encoder.group_sublayers(group, inner)
            block = f"{p}encoder.albert_layer_groups.{group}.albert_layers.{inner}"
            mappings += [
                *_linear(f"{block}.attention.query", attention.query),
                *_linear(f"{block}.attention.key", attention.key),
                *_linear(f"{block}.attention.value", attention.value),
                *_linear(f"{block}.attention.dense", attention.output_dense),
                *_norm(f"{block}.attention.LayerNorm", attention.layer_norm),
                *_linear(f"{block}.ffn", feed_forward.intermediate),
                *_linear(f"{block}.ffn_output", feed_forward.output_dense),
                *_norm(f"{block}.full_layer_layer_norm", feed_forward.layer_norm),
            ]
    return mappings


def _pretraining_parts(pretrainer: AlbertPretrainer, prefix: str) -> dict[str, list[Mapping]]:
    """transformers names -> our variables, grouped into the backbone and the heads."""
    backbone = pretrainer.backbone
    mlm = pretrainer.mlm_head
    return {
        "backbone": _backbone_mappings(backbone, prefix),
        "pooler": _linear(f"{prefix}pooler", backbone.pooler.dense),
        "mlm_head": [*_linear("predictions.dense", mlm.dense),
                     *_norm("predictions.LayerNorm", mlm.layer_norm),
                     Mapping("predictions.bias", mlm.output_bias)],
        "sop_head": _linear("sop_classifier.classifier", pretrainer.sop_head.dense),
    }
