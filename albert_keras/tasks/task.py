"""The task protocol: what training.finetune, serving.export and serving.client ask of a
task. A task is one object (one module per task, albert_keras/tasks/<name>/task.py)
registered by name in albert_keras.tasks.TASKS; the programs hold no task branches.

Fine-tuning (training.finetune runs them in this order):
    config_class            its section of the experiment config ("task": {...})
    read_data               read and check the files; the result has num_train
    build_model             the task model on a backbone
    compile_options         loss and metrics for model.compile (the models that compute
                            their own loss give none)
    dataset                 tf.data batches for fit and the per-epoch evaluation
    callbacks               extra Keras callbacks (per-epoch task metrics)
    evaluate                score the eval file on the chief, write the task's outputs;
                            may give the model new serving settings (a whole object)
Serving (serving.export, serving.warmup, serving.client):
    model_classes           the Keras models it serves: the exporter finds the task by them
    signature_names         its signatures, the first also serving_default (unless
                            serving_default names another)
    example_inputs          one small input per signature, for the warmup requests
    export_options          exporter flags of this task (argparse keyword arguments)
    serving_settings        the settings the model carries, with export overrides applied
    serving_length          the longest packed sequence by default
    signatures              the signatures' tf.functions over a serving module
    client_options,         the client's flags for its signatures, and the inputs
    client_inputs           they make
"""

from __future__ import annotations


class SettingError(ValueError):
    """A setting that breaks a rule; `field` names it, so a config error can name the
    config field that holds it (with `message`, the rest)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_dropout(rate, fail):
    """The rule of a head's classifier_dropout, in the sections of the tasks that have one."""
    if not 0 <= rate < 1:
        fail("classifier_dropout", f"must be in [0, 1), got {rate}")


class Task:
    """The base of every task; the defaults suit a task without the optional parts."""

    name: str = ""
    config_class: type | None = None  # a dataclass with validate(experiment, fail)
    finetunable: bool = True  # training.finetune can run it
    model_classes: tuple = ()
    signature_names: tuple = ()
    serving_default: str | None = None  # None: the first of signature_names
    example_inputs: dict = {}
    export_options: dict = {}  # option name -> argparse keyword arguments
    client_options: dict = {}  # option name -> argparse keyword arguments

    # ------------------------------------------------------------ fine-tuning
    def read_data(self, experiment, damaged: list | None):
        """The train and eval files, read and checked (errors name the file and line);
        an object with num_train. `damaged` (skip_damaged_records): where to describe
        the lines skipped, else None (a damaged line is an error)."""
        raise NotImplementedError(f"task {self.name} cannot be fine-tuned")

    def build_model(self, backbone, experiment, data):
        raise NotImplementedError

    def compile_options(self, experiment) -> dict:
        return {}

    def dataset(self, experiment, data, tokenizer, training: bool, batch_size: int,
                input_context=None):
        raise NotImplementedError

    def callbacks(self, experiment, data, tokenizer) -> list:
        return []

    def evaluate(self, model, experiment, data, tokenizer, output_dir: str) -> dict:
        """Metrics over the whole eval file (with num_examples)."""
        raise NotImplementedError

    # ------------------------------------------------------------ serving
    def serves(self, model) -> bool:
        return isinstance(model, self.model_classes)

    def serving_settings(self, model, max_seq_length: int, **options):
        """The settings the signatures use: the model's own, with `options` (of
        export_options, None: not given) applied. An option the task does not take
        is an error."""
        self.check_options(options)
        return None

    def check_options(self, options: dict):
        for name, value in sorted(options.items()):
            if value is not None and name not in self.export_options:
                raise ValueError(f"{name} is not an export option of task {self.name}; "
                                 f"it takes {', '.join(self.export_options) or 'none'}")

    def serving_length(self, model) -> int:
        return model.config.max_position_embeddings

    def signatures(self, module, settings) -> dict:
        """{signature name: tf.function} over `module` (serving.export_module's
        AlbertServingModule: tokenizer, pack, model, max_seq_length)."""
        return {}

    def client_inputs(self, signature: str, args) -> dict | None:
        """The inputs of `signature` from the client's parsed flags, or None when
        none of this task's flags were given."""
        return None
