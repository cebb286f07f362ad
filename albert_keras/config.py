"""AlbertConfig: the model hyperparameters, presets, and the two config file formats.

Two file formats exist in the wild and disagree on what "gelu" means:
- the reference TF1 albert_config.json, whose gelu is the tanh approximation;
- transformers' config.json (it carries "model_type"), where "gelu" is the exact erf
  form and "gelu_new" the tanh approximation.
Internally one unambiguous name is kept for each: "gelu_tanh" and "gelu_erf".
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

from albert_keras import atomic_file

ACTIVATIONS = ("gelu_tanh", "gelu_erf", "relu", "tanh", "silu", "linear")

# Cross-layer sharing (the paper's Table 4): which sub-layers a group owns.
SHARING_MODES = ("all", "attention", "ffn", "none")

# How a model computes the element-wise work between its matmuls (bias + GELU, softmax,
# residual + LayerNorm, the MLM loss, the LAMB update); the same arithmetic either way:
#   "plain"    TensorFlow ops only. Runs everywhere, including a stock TF Serving.
#   "xla"      each of those steps one XLA-compiled kernel with a hand-written
#              gradient: the training speed-up on CPU and GPU (BENCHMARKS.md).
#   "xla_cpu"  "xla" with row sums as matrix-vector products, faster on CPU; not for
#              GPU or TPU, whose float32 dots round their inputs (TF32, bf16 passes).
# Chosen when a model is built (AlbertConfig.fusion) and held by it; the training
# programs' "auto" picks "xla_cpu" or "xla" for the host (layers.fused_ops).
FUSIONS = ("plain", "xla", "xla_cpu")

# Where the factorized embedding projects E -> H:
#   "after_norm"   the paper and the reference: word + position + token-type embeddings
#                  summed at E, LayerNorm at E, then a dense E -> H with bias; the MLM
#                  head maps H -> E and scores against the word matrix.
#   "words_first"  brightmart/albert_zh: only the word embeddings are projected (E -> H,
#                  no bias); position and token-type embeddings are H wide, added and
#                  LayerNorm'd at H; the MLM head stays at H and scores through the
#                  transposed projection and the word matrix.
EMBEDDING_PROJECTIONS = ("after_norm", "words_first")

# What a training step keeps for the backward pass (activation memory):
#   "none"   every intermediate of every encoder block (fastest).
#   "block"  only each encoder block's input; the backward pass recomputes the block's
#            intermediates from it (SharedEncoder). Same outputs and gradients, less
#            memory, one more forward pass of the encoder (BENCHMARKS.md, remat). In
#            TensorFlow's graph runtime: a step compiled whole by XLA (compile with
#            jit_compile=False; TPUs always compile so) merges the recomputation back
#            into the forward pass and keeps the memory. With dropout, the recomputed
#            blocks draw their masks from per-layer seeds, the same in both passes.
REMAT_MODES = ("none", "block")


def shares_attention(sharing: str) -> bool:
    return sharing in ("all", "attention")


def shares_feed_forward(sharing: str) -> bool:
    return sharing in ("all", "ffn")


def group_of_layer(layer_index: int, num_layers: int, num_groups: int) -> int:
    """The reference's group for layer i of L: floor(i * G / L)."""
    return layer_index * num_groups // num_layers


def check_heads(hidden_size: int, num_attention_heads: int, where: str = "AlbertConfig"):
    if hidden_size % num_attention_heads:
        raise ValueError(f"{where}.hidden_size ({hidden_size}) must be divisible by "
                         f"num_attention_heads ({num_attention_heads})")


def check_structure(hidden_size: int, num_attention_heads: int, num_layers: int,
                    num_groups: int, sharing: str, where: str = "AlbertConfig") -> None:
    """The divisibility rules and the sharing mode, with errors naming the fields."""
    check_heads(hidden_size, num_attention_heads, where)
    if num_layers % num_groups:
        raise ValueError(f"{where}.num_hidden_layers ({num_layers}) must be divisible "
                         f"by num_hidden_groups ({num_groups})")
    if sharing not in SHARING_MODES:
        raise ValueError(f"{where}.sharing {sharing!r} is unknown; use one of "
                         f"{', '.join(SHARING_MODES)}")


def check_fusion(fusion: str, where: str = "AlbertConfig.fusion") -> str:
    if fusion not in FUSIONS:
        raise ValueError(f"{where} {fusion!r} is unknown; use one of {', '.join(FUSIONS)}")
    return fusion


def check_remat(remat: str, where: str = "AlbertConfig.remat") -> str:
    if remat not in REMAT_MODES:
        raise ValueError(f"{where} {remat!r} is unknown; use one of {', '.join(REMAT_MODES)}")
    return remat

# File name -> internal name, by file source.
_REFERENCE_ACTIVATIONS = {
    "gelu": "gelu_tanh",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
    "swish": "silu",
    "silu": "silu",
}
_TRANSFORMERS_ACTIVATIONS = {
    "gelu": "gelu_erf",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
    "tanh": "tanh",
    "silu": "silu",
    "swish": "silu",
    "linear": "linear",
}
# Internal name -> file name, by file source.
_REFERENCE_ACTIVATION_NAMES = {
    "gelu_tanh": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}
_TRANSFORMERS_ACTIVATION_NAMES = {
    "gelu_tanh": "gelu_new",
    "gelu_erf": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "silu": "silu",
    "linear": "linear",
}

# Keys some reference or transformers files carry that this model does not use.
_KNOWN_UNUSED_KEYS = {
    "down_scale_factor", "net_structure_type", "gap_size", "num_memory_blocks",
    "model_type", "architectures", "transformers_version", "torch_dtype", "dtype",
    "pad_token_id", "bos_token_id", "eos_token_id", "classifier_dropout_prob",
    "position_embedding_type", "output_past", "layers_to_keep", "_name_or_path",
    "tie_word_embeddings",
    # BERT's and brightmart/albert_zh's config keys (ln_type is checked by the converter).
    "directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
    "pooler_size_per_head", "pooler_type", "ln_type",
    # Task heads' settings, read by albert_keras.convert when it builds the task model.
    "id2label", "label2id", "num_labels", "problem_type",
}

_V2 = dict(vocab_size=30000, embedding_size=128, max_position_embeddings=512,
           type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

PRESETS = {
    "base": dict(_V2, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "large": dict(_V2, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096),
    "xlarge": dict(_V2, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                   intermediate_size=8192),
    "xxlarge": dict(_V2, hidden_size=4096, num_hidden_layers=12, num_attention_heads=64,
                    intermediate_size=16384),
    # Small enough for unit tests and the CPU demo.
    "tiny": dict(vocab_size=1000, embedding_size=32, hidden_size=64, num_hidden_layers=4,
                 num_attention_heads=4, intermediate_size=128, max_position_embeddings=128,
                 type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
}


@dataclasses.dataclass
class AlbertConfig:
    """ALBERT hyperparameters with the reference albert_config.json field names.

    sharing selects the cross-layer parameter sharing of the paper's Table 4:
    "all" (reference ALBERT), "attention" or "ffn" (only that sub-layer shared; the
    other has its own weights in every layer), "none" (BERT-style, nothing shared).
    fusion chooses how the model computes (FUSIONS above) and remat what a training
    step keeps for its backward pass (REMAT_MODES above); neither is a hyperparameter
    of the weights, so reference and transformers config files do not carry them.
    """

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_tanh"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    sharing: str = "all"
    embedding_projection: str = "after_norm"
    fusion: str = "plain"
    remat: str = "none"

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self):
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers",
                     "num_hidden_groups", "inner_group_num", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"AlbertConfig.{name} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"AlbertConfig.{name} must be in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"AlbertConfig.{name} must be a positive number, got {value!r}")
        check_structure(self.hidden_size, self.num_attention_heads, self.num_hidden_layers,
                        self.num_hidden_groups, self.sharing)
        check_fusion(self.fusion)
        check_remat(self.remat)
        if self.embedding_projection not in EMBEDDING_PROJECTIONS:
            raise ValueError(f"AlbertConfig.embedding_projection {self.embedding_projection!r} "
                             f"is unknown; use one of {', '.join(EMBEDDING_PROJECTIONS)}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"AlbertConfig.hidden_act {self.hidden_act!r} is unknown; use one of "
                f"{', '.join(ACTIVATIONS)}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AlbertConfig":
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "internal", origin: str = "dict") -> "AlbertConfig":
        """Builds a config from a mapping.

        source: "internal" (our own names), "reference" (albert_config.json) or
        "transformers" (config.json); it decides how activation names are read.
        origin names the file in warnings and errors.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key == "kernels" and "fusion" not in values:  # the name fusion had before
                key = "fusion"
            if key in fields:
                kwargs[key] = value
            elif key not in _KNOWN_UNUSED_KEYS or source == "internal":
                warnings.warn(f"{origin}: ignoring unknown config key {key!r}", stacklevel=2)
        if "hidden_act" in kwargs and source != "internal":
            table = _REFERENCE_ACTIVATIONS if source == "reference" else _TRANSFORMERS_ACTIVATIONS
            act = kwargs["hidden_act"]
            if act not in table:
                raise ValueError(
                    f"{origin}: field 'hidden_act' has unknown activation {act!r} for a "
                    f"{source} config; known: {', '.join(sorted(table))}")
            kwargs["hidden_act"] = table[act]
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{origin}: {error}") from error

    @classmethod
    def from_json_file(cls, path) -> "AlbertConfig":
        """Reads a reference albert_config.json or a transformers config.json."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON (line {error.lineno}): {error.msg}") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(values).__name__}")
        if "model_type" in values:
            if values["model_type"] != "albert":
                raise ValueError(f"{path}: model_type is {values['model_type']!r}, not 'albert'")
            source = "transformers"
        elif values.get("_albert_keras_format") == "internal":
            source = "internal"
            values = {k: v for k, v in values.items() if k != "_albert_keras_format"}
        else:
            source = "reference"
        return cls.from_dict(values, source=source, origin=path)

    def to_json_file(self, path, format: str = "reference") -> None:
        """Writes the config as "reference" (albert_config.json), "transformers"
        (config.json) or "internal" (our field names, lossless). Written atomically."""
        path = os.fspath(path)
        values = self.to_dict()
        if format in ("reference", "transformers"):
            table = (_REFERENCE_ACTIVATION_NAMES if format == "reference"
                     else _TRANSFORMERS_ACTIVATION_NAMES)
            if self.hidden_act not in table:
                raise ValueError(
                    f"hidden_act {self.hidden_act!r} cannot be written in a {format} config")
            for name, reference in (("sharing", "all"), ("embedding_projection", "after_norm")):
                if values[name] != reference:
                    raise ValueError(
                        f"{name}={values[name]!r} cannot be expressed in a {format} config; "
                        "use format='internal'")
            values["hidden_act"] = table[self.hidden_act]
            del (values["sharing"], values["embedding_projection"], values["fusion"],
                 values["remat"])
            if format == "transformers":
                values.update(model_type="albert", architectures=["AlbertForPreTraining"],
                              pad_token_id=0, bos_token_id=2, eos_token_id=3,
                              classifier_dropout_prob=0.1, position_embedding_type="absolute")
        elif format == "internal":
            values["_albert_keras_format"] = "internal"
        else:
            raise ValueError(f"Unknown config format {format!r}: use reference, transformers or internal")
        atomic_file.write_json(path, values, indent=2, sort_keys=True)
