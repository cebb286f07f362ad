"""Experiment configs: one JSON file per run, command-line flags override its fields.

Every field is checked before any training starts; errors name the field and file.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import typing

from albert_keras import run_directory
from albert_keras.atomic_file import write_json
from albert_keras.config import KERNELS as MODEL_KERNELS
from albert_keras.config import REMAT_MODES

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("lamb", "adamw")
# "auto": the host's fastest training kernels (layers.fused_ops.kernels_for_this_host).
KERNELS = ("auto",) + MODEL_KERNELS
TASK_TYPES = ("classification", "regression", "tagging", "question_answering")


@dataclasses.dataclass
class TrainingOptions:
    """Fields that pretraining and fine-tuning share."""

    output_dir: str = "runs/experiment"
    # Model: a preset name, or an albert_config.json / config.json file.
    model_preset: str | None = "tiny"
    model_config_file: str | None = None
    model_overrides: dict = dataclasses.field(default_factory=dict)
    spm_model: str | None = None
    seq_length: int = 128
    # Sequences per optimizer update, over all replicas and micro-batches. Each replica
    # splits its share into gradient_accumulation_steps micro-batches, run one after
    # another and summed into one exact update (models/gradient_accumulation.py):
    # micro-batch per replica = global_batch_size / (replicas * accumulation steps).
    global_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    # Steps count optimizer updates: total_steps, warmup, checkpoints and logs.
    total_steps: int = 1000
    steps_per_epoch: int = 100  # one epoch = one checkpoint + one log line
    eval_steps: int = 20  # batches of eval_batch_size (global_batch_size / accumulation)
    # Optimisation (reference defaults).
    optimizer: str = "lamb"
    learning_rate: float = 0.00176
    warmup_steps: int = 100
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 1.0
    # Execution.
    strategy: str = "default"
    num_cpu_devices: int = 0  # mirrored on CPU: this many logical CPU devices
    tpu: str = ""  # TPU name or address for the cluster resolver
    precision: str = "float32"
    jit_compile: bool = False
    # How the model computes its element-wise work (albert_keras.config.KERNELS):
    # "auto" takes the fused XLA kernels for this host; "plain" TensorFlow ops only.
    kernels: str = "auto"
    # What a training step keeps for its backward pass (albert_keras.config.REMAT_MODES):
    # "block" recomputes each encoder block's activations there: less memory, more time.
    remat: str = "none"
    steps_per_execution: int = 1
    seed: int = 12345
    keep_checkpoints: int = 3
    profile_steps: str = ""  # "START,END" writes a profiler trace for that step range
    # A damaged record file: false stops with one line naming the file and byte offset
    # (exit 2, checkpoints kept); true skips the rest of each damaged file, counted in the
    # log and TensorBoard (a full read of the record files before training finds them).
    # Fine-tuning text files: a line that is not valid UTF-8 is an error naming the file,
    # line and byte, or with true is skipped (a tagging file: its sentence) and counted;
    # a SQuAD file's invalid question is an error naming it, or with true skipped.
    skip_damaged_records: bool = False

    @property
    def eval_batch_size(self) -> int:
        """Sequences per evaluation step (all replicas): one micro-batch per replica,
        so that evaluation fits where a training micro-batch does."""
        return self.global_batch_size // self.gradient_accumulation_steps

    def validate(self, origin: str = "config"):
        def fail(field, message):
            raise ValueError(f"{origin}: field '{field}': {message}")

        if self.strategy not in STRATEGIES:
            fail("strategy", f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            fail("precision", f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.kernels not in KERNELS:
            fail("kernels", f"unknown kernels {self.kernels!r}; use one of {', '.join(KERNELS)}")
        if self.remat not in REMAT_MODES:
            fail("remat", f"unknown remat {self.remat!r}; use one of {', '.join(REMAT_MODES)}")
        if self.remat != "none" and (self.jit_compile or self.strategy == "tpu"):
            # XLA compiles the step whole and merges the recomputation back into the
            # forward pass: measured, no memory saved, time spent (BENCHMARKS.md, remat).
            where = "jit_compile" if self.jit_compile else "strategy tpu (always XLA)"
            fail("remat", f"remat {self.remat!r} saves no memory under {where}: XLA "
                 "merges the recomputation back" + (
                     "; set jit_compile false" if self.jit_compile else ""))
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
        for name in ("seq_length", "global_batch_size", "gradient_accumulation_steps",
                     "total_steps", "steps_per_epoch", "steps_per_execution",
                     "keep_checkpoints"):
            if getattr(self, name) <= 0:
                fail(name, f"must be positive, got {getattr(self, name)}")
        # Before TensorFlow starts; the split over replicas too: check_batch_split.
        if self.global_batch_size % self.gradient_accumulation_steps:
            fail("global_batch_size", f"{self.global_batch_size} does not split into "
                 f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) equal "
                 "micro-batches")
        if self.eval_steps < 0 or self.warmup_steps < 0:
            fail("eval_steps" if self.eval_steps < 0 else "warmup_steps", "must be >= 0")
        if self.total_steps % self.steps_per_epoch:
            fail("total_steps", f"{self.total_steps} must be a multiple of steps_per_epoch "
                 f"({self.steps_per_epoch}): an epoch is one checkpoint")
        if self.warmup_steps > self.total_steps:
            fail("warmup_steps", f"{self.warmup_steps} exceeds total_steps {self.total_steps}")
        if self.learning_rate <= 0:
            fail("learning_rate", "must be positive")
        if self.model_preset is None and self.model_config_file is None:
            fail("model_preset", "give model_preset or model_config_file")
        if self.model_config_file and not os.path.isfile(self.model_config_file):
            fail("model_config_file", f"no such file: {self.model_config_file}")
        if self.spm_model and not os.path.isfile(self.spm_model):
            fail("spm_model", f"no such file: {self.spm_model}")
        if self.profile_steps:
            try:
                start, end = (int(v) for v in self.profile_steps.split(","))
                assert 0 < start <= end
            except (ValueError, AssertionError):
                fail("profile_steps", f"expected 'START,END' step numbers, got {self.profile_steps!r}")


@dataclasses.dataclass
class PretrainExperiment(TrainingOptions):
    train_files: str = ""
    eval_files: str = ""
    max_predictions: int = 20
    init_checkpoint: str = ""  # optional .keras model to start from

    def validate(self, origin: str = "config"):
        super().validate(origin)
        if not self.train_files:
            raise ValueError(f"{origin}: field 'train_files': a file pattern is required")
        for field in ("train_files", "eval_files"):
            pattern = getattr(self, field)
            if pattern and not _matches(pattern):
                raise ValueError(f"{origin}: field '{field}': no files match {pattern!r}")
        if not 0 < self.max_predictions < self.seq_length:
            raise ValueError(f"{origin}: field 'max_predictions': must be in [1, seq_length), "
                             f"got {self.max_predictions}")
        if self.init_checkpoint and not os.path.exists(self.init_checkpoint):
            raise ValueError(f"{origin}: field 'init_checkpoint': no such file {self.init_checkpoint}")


@dataclasses.dataclass
class FinetuneExperiment(TrainingOptions):
    train_file: str = ""
    eval_file: str = ""  # scored after training: OUTPUT_DIR/eval_results.json
    # "classification", "regression", "tagging" (words' tags) or "question_answering"
    # (SQuAD 1.1 / 2.0 JSON files; seq_length is the window, 384 in the reference).
    task_type: str = "classification"
    # Classification labels, in class-index order; tagging: the tags (default: those
    # of train_file, sorted).
    label_names: list | None = None
    # Tagging files (albert_keras/data/tagging.py): conllu, conll or jsonl ("": by
    # extension); tag_column 1-based, 0: the format's own (CoNLL-U 4 UPOS, columns the
    # last); window_stride in pieces between the windows of a long sentence, 0: half.
    data_format: str = ""
    tag_column: int = 0
    window_stride: int = 0
    # A .keras file (pretraining output, converted model or backbone) or a directory
    # holding final_model.keras; empty: a fresh backbone from model_preset.
    init_model: str = ""
    classifier_dropout: float = 0.1
    # Question answering (albert_keras/data/squad_windows.py, squad_answers.py): the
    # reference defaults. squad_version "auto": 2.0 when a file has an unanswerable
    # question. null_threshold (SQuAD 2.0): null: the eval file's best-F1 threshold.
    # qa_head: "span" (run_squad_v1.py, transformers' AlbertForQuestionAnswering) or
    # "squad2" (the reference SQuAD 2.0 head: start-conditioned ends, answerability).
    qa_head: str = "span"
    squad_version: str = "auto"
    doc_stride: int = 128
    max_query_length: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30
    null_threshold: float | None = None
    cased: bool = False  # the SentencePiece model was built with --cased

    def validate(self, origin: str = "config"):
        super().validate(origin)

        def fail(field, message):
            raise ValueError(f"{origin}: field '{field}': {message}")

        if not self.train_file:
            fail("train_file", "is required")
        for field in ("train_file", "eval_file"):
            path = getattr(self, field)
            if path and not os.path.isfile(path):
                fail(field, f"no such file {path}")
        if self.task_type not in TASK_TYPES:
            fail("task_type", f"use one of {', '.join(TASK_TYPES)}, not {self.task_type!r}")
        if self.task_type == "question_answering":
            self._validate_question_answering(fail)
        if self.task_type == "tagging":
            if self.label_names is not None and (
                    not isinstance(self.label_names, list) or not self.label_names
                    or len({str(name) for name in self.label_names}) != len(self.label_names)):
                fail("label_names", "list the tags once each (or null: those of train_file)")
            if self.data_format not in ("", "conllu", "conll", "jsonl"):
                fail("data_format", f"use conllu, conll or jsonl, not {self.data_format!r}")
            if self.tag_column and self.tag_column < 2:
                fail("tag_column", f"a 1-based column after the word's, got {self.tag_column}")
            if self.window_stride and not 1 <= self.window_stride <= self.seq_length - 2:
                fail("window_stride", f"must be in [1, seq_length - 2 = "
                     f"{self.seq_length - 2}], got {self.window_stride}")
        elif self.task_type == "classification":
            names = self.label_names
            if not isinstance(names, list) or len(names) < 2:
                fail("label_names", "list the classification labels (at least 2), "
                     "in class-index order")
            if len({str(name) for name in names}) != len(names):
                fail("label_names", f"labels repeat: {names}")
        elif self.label_names:
            fail("label_names", f"is for classification or tagging; remove it for "
                 f"{self.task_type}")
        if self.init_model:
            if os.path.isdir(self.init_model):
                if not os.path.isfile(run_directory.model_file(self.init_model)):
                    fail("init_model", f"directory {self.init_model} has no "
                                       f"{run_directory.FINAL_MODEL}")
            elif not os.path.isfile(self.init_model):
                fail("init_model", f"no such file {self.init_model}")
            elif not self.init_model.endswith(".keras"):
                fail("init_model", f"expected a .keras file, got {self.init_model}")
        if not self.spm_model:
            fail("spm_model", "fine-tuning tokenizes text and needs it")
        if not 0 <= self.classifier_dropout < 1:
            fail("classifier_dropout", f"must be in [0, 1), got {self.classifier_dropout}")


    def _validate_question_answering(self, fail):
        if self.qa_head not in ("span", "squad2"):
            fail("qa_head", f"use span or squad2, not {self.qa_head!r}")
        if self.squad_version not in ("auto", "1.1", "2.0"):
            fail("squad_version", f"use auto, 1.1 or 2.0, not {self.squad_version!r}")
        for name in ("doc_stride", "max_query_length", "n_best_size", "max_answer_length"):
            if getattr(self, name) < 1:
                fail(name, f"must be at least 1, got {getattr(self, name)}")
        if self.seq_length < self.max_query_length + 4:
            fail("seq_length", f"{self.seq_length} leaves no context after [CLS], "
                 f"max_query_length ({self.max_query_length}) question pieces and two "
                 f"[SEP]; use at least {self.max_query_length + 4}")
        if self.null_threshold is not None and not isinstance(self.null_threshold,
                                                              (int, float)):
            fail("null_threshold", f"a number or null, got {self.null_threshold!r}")


def check_batch_split(options, replicas: int, strategy_name: str):
    """global_batch_size must split over the replicas and then into the micro-batches."""
    parts = replicas * options.gradient_accumulation_steps
    if options.global_batch_size % parts:
        split = (f"{replicas} replicas of strategy {strategy_name} x "
                 f"{options.gradient_accumulation_steps} gradient_accumulation_steps"
                 if options.gradient_accumulation_steps > 1
                 else f"{replicas} replicas of strategy {strategy_name}")
        raise ValueError(f"field 'global_batch_size': {options.global_batch_size} is not "
                         f"divisible by the {split}")


def _matches(pattern: str) -> bool:
    return any(glob.glob(p.strip()) for p in pattern.split(","))


def _parse_value(field: dataclasses.Field, text: str, hints: dict):
    kind = hints[field.name]
    if kind is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"--{field.name}: expected true or false, got {text!r}")
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    if kind == typing.Optional[float]:
        return None if text.lower() in ("none", "null") else float(text)
    if kind in (dict, list, typing.Optional[list]) or field.name in ("model_overrides", "label_names"):
        return json.loads(text)
    if text.lower() == "none" and field.default is None:
        return None
    return text


def load_experiment(cls, argv=None, description=""):
    """--config FILE (JSON) then --FIELD VALUE overrides -> a validated experiment."""
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="experiment JSON file (training/configs/*.json)")
    for field in fields:
        parser.add_argument(f"--{field.name}", dest=field.name, default=None,
                            help=f"override '{field.name}' (default {field.default!r})"
                            if field.default is not dataclasses.MISSING else None)
    args = parser.parse_args(argv)
    values, origin = {}, "command line"
    if args.config:
        origin = args.config
        try:
            with open(args.config, encoding="utf-8") as f:
                values = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"--config: no such file {args.config}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{args.config}: not valid JSON (line {error.lineno}): {error.msg}") from None
        known = {f.name for f in fields}
        unknown = sorted(set(values) - known - {"description"})
        if unknown:
            raise ValueError(f"{args.config}: unknown field(s) {unknown}")
        values.pop("description", None)
    for field in fields:
        text = getattr(args, field.name)
        if text is not None:
            try:
                values[field.name] = _parse_value(field, text, hints)
            except (ValueError, json.JSONDecodeError) as error:
                raise ValueError(f"--{field.name}: cannot parse {text!r}: {error}") from None
    experiment = cls(**values)
    experiment.validate(origin)
    return experiment


def write_experiment(experiment, path: str):
    """Writes the effective config (after overrides) atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, dataclasses.asdict(experiment), indent=2, sort_keys=True)
