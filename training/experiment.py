"""Experiment configs: one JSON file per run, command-line flags override its fields.

Every field is checked before any training starts; errors name the field and file.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import typing

from albert_keras import run_directory
from albert_keras.atomic_file import write_json
from albert_keras.config import FUSIONS as MODEL_FUSIONS
from albert_keras.config import REMAT_MODES

# Fields renamed since configs were first written: former name -> name.
RENAMED_FIELDS = {"kernels": "fusion"}
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
OPTIMIZERS = ("lamb", "adamw")
# "auto": the host's fastest fusion for training (layers.fused_ops.fusion_for_this_host).
FUSIONS = ("auto",) + MODEL_FUSIONS


@dataclasses.dataclass
class TrainingOptions:
    """Fields that pretraining and fine-tuning share."""

    output_dir: str = "runs/experiment"
    # Model: a preset name, or an albert_config.json / config.json file.
    model_preset: str | None = "tiny"
    model_config_file: str | None = None
    model_overrides: dict = dataclasses.field(default_factory=dict)
    # The vocabulary: a SentencePiece .model or a WordPiece vocab.txt. Saved inside the
    # model; fine-tuning a model that carries one needs none.
    spm_model: str | None = None
    cased: bool = False  # the vocabulary is cased (text is not lowercased)
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
    # How the model computes its element-wise work (albert_keras.config.FUSIONS):
    # "auto" takes the fused XLA kernels for this host; "plain" TensorFlow ops only.
    # ("kernels" in configs written before this name.)
    fusion: str = "auto"
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
        if self.fusion not in FUSIONS:
            fail("fusion", f"unknown fusion {self.fusion!r}; use one of {', '.join(FUSIONS)}")
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
    # A registered task (albert_keras.tasks): "classification", "regression", "tagging"
    # (words' tags) or "question_answering" (SQuAD 1.1 / 2.0 JSON files).
    task_type: str = "classification"
    # The task's own section: its config class's fields (albert_keras/tasks/*/settings.py),
    # a dict in the JSON file, --task.FIELD on the command line. The fields of a task's
    # section may also stand at the top level, as in configs written before sections.
    task: typing.Any = None
    # A .keras file (pretraining output, converted model or backbone) or a directory
    # holding final_model.keras; empty: a fresh backbone from model_preset.
    init_model: str = ""
    # Use spm_model (and cased) instead of the vocabulary init_model carries.
    replace_vocabulary: bool = False

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
        task = finetuning_task(self.task_type, fail)
        if not isinstance(self.task, task.config_class):
            if dataclasses.is_dataclass(self.task):
                fail("task", f"a {type(self.task).__name__}, not the {task.name} task's "
                             f"section ({task.config_class.__name__})")
            self.task = task_section(task, self.task or {}, fail)

        def fail_in_section(field, message):
            fail(field if field in ("seq_length",) else f"task.{field}", message)

        self.task.validate(self, fail_in_section)
        if self.init_model:
            if os.path.isdir(self.init_model):
                if not os.path.isfile(run_directory.model_file(self.init_model)):
                    fail("init_model", f"directory {self.init_model} has no "
                                       f"{run_directory.FINAL_MODEL}")
            elif not os.path.isfile(self.init_model):
                fail("init_model", f"no such file {self.init_model}")
            elif not self.init_model.endswith(".keras"):
                fail("init_model", f"expected a .keras file, got {self.init_model}")
        if not self.spm_model and not self.init_model:
            fail("spm_model", "fine-tuning tokenizes text and needs a vocabulary (or an "
                              "init_model that carries one)")


def finetuning_task(name, fail):
    """The registered task of that name that training.finetune can run."""
    from albert_keras.tasks import all_tasks

    tasks = {task.name: task for task in all_tasks() if task.finetunable}
    if name not in tasks:
        fail("task_type", f"use one of {', '.join(tasks)}, not {name!r}")
    return tasks[name]


def task_section(task, values: dict, fail):
    """The task's config section (its config_class) from a dict, fields checked."""
    if not isinstance(values, dict):
        fail("task", f"a JSON object of the {task.name} task's fields, got {values!r}")
    known = [f.name for f in dataclasses.fields(task.config_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        fail(f"task.{unknown[0]}", f"not a field of the {task.name} task; its fields: "
             f"{', '.join(known)}")
    return task.config_class(**values)


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


def _section_fields(cls) -> dict:
    """Field name -> the fine-tuning tasks whose config section has it ({} for an
    experiment without sections)."""
    if "task" not in {f.name for f in dataclasses.fields(cls)}:
        return {}
    from albert_keras.tasks import all_tasks

    owners = {}
    for task in all_tasks():
        if task.finetunable:
            for field in dataclasses.fields(task.config_class):
                owners.setdefault(field.name, []).append(task)
    return owners


_NULLS = ("null", "none", "None")


def _fields_of(task_type: str, section_owners: dict) -> set:
    return {name for name, owners in section_owners.items()
            if task_type in [task.name for task in owners]}


def _unset(name: str, value, owners) -> bool:
    """Whether a field's value is null or the default in every task section that has
    the field."""
    return value is None or all(
        value == next(f.default for f in dataclasses.fields(task.config_class)
                      if f.name == name)
        for task in owners)


def _check_owners(names, origin: str, section_owners: dict, task_type: str):
    """Each field must be one of task_type's section; else the error names where it
    belongs."""
    for name in names:
        owners = [task.name for task in section_owners[name]]
        if task_type not in owners:
            raise ValueError(
                f"{origin}: field '{name}': belongs to the section of task "
                f"{' or '.join(owners)} (\"task\": {{\"{name}\": ...}}), and task_type is "
                f"{task_type!r}")


def load_experiment(cls, argv=None, description=""):
    """--config FILE (JSON) then --FIELD VALUE overrides -> a validated experiment.
    A task's section: "task": {...} in the file, --task.FIELD VALUE on the command line."""
    fields = [f for f in dataclasses.fields(cls) if f.name != "task"]
    hints = typing.get_type_hints(cls)
    section_owners = _section_fields(cls)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="experiment JSON file (training/configs/*.json)")
    former = {new: old for old, new in RENAMED_FIELDS.items()}
    for field in fields:
        names = [f"--{field.name}"] + ([f"--{former[field.name]}"] if field.name in former else [])
        parser.add_argument(*names, dest=field.name, default=None,
                            help=f"override '{field.name}' (default {field.default!r})"
                            if field.default is not dataclasses.MISSING else None)
    for name, owners in section_owners.items():
        parser.add_argument(f"--task.{name}", dest=f"task.{name}", default=None,
                            help=f"override the task section's '{name}' (task "
                                 f"{', '.join(task.name for task in owners)})")
        # The flag of configs written before sections.
        parser.add_argument(f"--{name}", dest=f"flat.{name}", default=None,
                            help=argparse.SUPPRESS)
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
        for old, new in RENAMED_FIELDS.items():
            if old in values:
                if new in values:
                    raise ValueError(f"{args.config}: field '{old}' is the former name of "
                                     f"'{new}'; give one of them")
                values[new] = values.pop(old)
        known = {f.name for f in dataclasses.fields(cls)} | set(section_owners)
        unknown = sorted(set(values) - known - {"description"})
        if unknown:
            raise ValueError(f"{args.config}: unknown field(s) {unknown}")
        values.pop("description", None)
    file_task_type = values.get("task_type", getattr(cls, "task_type", None))
    for field in fields:
        text = getattr(args, field.name)
        if text is not None:
            try:
                values[field.name] = _parse_value(field, text, hints)
            except (ValueError, json.JSONDecodeError) as error:
                raise ValueError(f"--{field.name}: cannot parse {text!r}: {error}") from None
    if section_owners:
        task_type = values.get("task_type", cls.task_type)
        section = values.get("task") or {}
        if not isinstance(section, dict):
            raise ValueError(f"{origin}: field 'task': a JSON object of the task's fields, "
                             f"got {section!r}")
        section = dict(section)
        if task_type != file_task_type:
            # task_type changed on the command line: the file's section was another
            # task's; what the new task has no field for is left out.
            own = _fields_of(task_type, section_owners)
            dropped = sorted(name for name in set(section) | set(values)
                             if name in section_owners and name not in own)
            for name in dropped:
                section.pop(name, None)
                values.pop(name, None)
            if dropped:
                print(f"note: task_type {task_type} on the command line; {origin}'s "
                      f"{', '.join(dropped)} left out (task {file_task_type})",
                      file=sys.stderr)
        # Top-level fields of the task's section (configs written before sections).
        # Configs of that time (and their experiment.json) hold every task's fields:
        # another task's field at null or at its default says nothing, and is left out.
        own = _fields_of(task_type, section_owners)
        for name in [n for n in values if n in section_owners and n not in own
                     and _unset(n, values[n], section_owners[n])]:
            values.pop(name)
        flat = [name for name in values if name in section_owners]
        _check_owners(flat, origin, section_owners, task_type)
        for name in flat:
            if name in section:
                raise ValueError(f"{origin}: field '{name}' is given twice: at the top "
                                 f"level and as task.{name}")
            section[name] = values.pop(name)
        # --task.FIELD, and --FIELD as before sections.
        given = {name: getattr(args, prefix + name) for name in section_owners
                 for prefix in ("flat.", "task.") if getattr(args, prefix + name) is not None}
        # "null" for a field the task does not have: nothing to set (flags written
        # before sections cleared another task's field so).
        for name in [n for n, text in given.items() if n not in own and text in _NULLS]:
            given.pop(name)
            section.pop(name, None)
        _check_owners(given, "command line", section_owners, task_type)
        if given:
            from albert_keras.tasks import task_named

            config_class = task_named(task_type).config_class
            config_fields = {f.name: f for f in dataclasses.fields(config_class)}
            for name, text in given.items():
                try:
                    section[name] = _parse_value(config_fields[name], text,
                                                 typing.get_type_hints(config_class))
                except (ValueError, json.JSONDecodeError) as error:
                    raise ValueError(f"--task.{name}: cannot parse {text!r}: {error}") from None
        values["task"] = section
    experiment = cls(**values)
    experiment.validate(origin)
    return experiment


def write_experiment(experiment, path: str):
    """Writes the effective config (after overrides) atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json(path, dataclasses.asdict(experiment), indent=2, sort_keys=True)
