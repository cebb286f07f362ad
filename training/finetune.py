"""Fine-tune ALBERT for sentence or sentence-pair classification or regression, for
word tagging (part of speech, named entities) or for question answering (SQuAD).

    python -m training.finetune --config training/configs/finetune_demo.json [--FIELD VALUE ...]
    python -m training.finetune --config training/configs/tagging_demo.json
    python -m training.finetune --config training/configs/squad_demo.json

The task (task_type) is a registered task of albert_keras.tasks, with its own config
section ("task": {...}; the fields of albert_keras/tasks/<task>/settings.py):
classification and regression read GLUE-style TSV / CSV / JSONL files with the columns
text_a, optional text_b and label (a name from label_names, or a number for
regression); tagging reads CoNLL-U, CoNLL-2003-style columns or JSONL tokens/tags
files (long sentences are cut into overlapping windows, not truncated); question
answering reads SQuAD 1.1 / 2.0 JSON (long contexts become windows of seq_length pieces
every doc_stride; EM and F1 each epoch). Text is tokenized in-graph.
The backbone comes from init_model: a .keras file written by training.pretrain
(AlbertPretrainer) or albert_keras.convert, an AlbertBackbone or AlbertClassifier
.keras file, or a directory holding final_model.keras. Its config replaces
model_preset and model_overrides. Without init_model the backbone starts from random
weights (a warning says so).

Restarted with the same command after a kill, it resumes from the last checkpoint in
OUTPUT_DIR/checkpoints. Outputs (chief only): OUTPUT_DIR/{experiment.json,
checkpoints/, logs/ (TensorBoard; logs/eval holds the final eval metrics),
metrics.csv, eval_results.json, final_model.keras (the task's model, which
serving.export reads: AlbertClassifier, AlbertTagger, AlbertQuestionAnswerer, ...),
albert_config.json, spm.model, and the task's own outputs: for tagging
eval_predictions.tsv (word, gold tag, predicted tag per line), for question answering
predictions.json and (SQuAD 2.0) null_odds.json in the official formats}.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

from albert_keras.atomic_file import write_json
from training.experiment import FinetuneExperiment, load_experiment


def check_data(experiment, task, damaged=None):
    """Reads and checks the train and eval files (errors name the file and line, or
    the SQuAD article, paragraph and question); returns the task's data. With a
    `damaged` list (skip_damaged_records), lines that are not valid UTF-8 (invalid
    SQuAD questions) are skipped and described there."""
    data = task.read_data(experiment, damaged)
    if data.num_train < experiment.global_batch_size:
        raise ValueError(f"field 'train_file': {data.num_train} examples, fewer than one "
                         f"global batch ({experiment.global_batch_size})")
    return data


def build_task_model(experiment, task, vocab_size: int, data):
    """The task's model, built in the current strategy scope and dtype policy. A loaded
    backbone is made anew from its config and given its weights, whatever model held it
    (a saved task model's old head is left behind)."""
    from albert_keras import AlbertBackbone
    from albert_keras.layers.fused_ops import resolve_fusion
    from training import model_setup

    if experiment.init_model:
        saved = model_setup.load_backbone(experiment.init_model, field="init_model")
        config = dataclasses.replace(saved.config, fusion=resolve_fusion(experiment.fusion),
                                     remat=experiment.remat)
        print(f"Backbone from {experiment.init_model} (its config replaces model_preset "
              f"and model_overrides)", flush=True)
    else:
        saved = None
        config = model_setup.model_config(experiment)
        print("warning: no init_model; fine-tuning a backbone with random weights",
              file=sys.stderr, flush=True)
    if vocab_size > config.vocab_size:
        raise ValueError(f"field 'spm_model': {vocab_size} pieces, more than the backbone's "
                         f"vocab_size {config.vocab_size}; use the pretraining vocabulary")
    if experiment.seq_length > config.max_position_embeddings:
        raise ValueError(f"field 'seq_length': {experiment.seq_length} exceeds the backbone's "
                         f"max_position_embeddings {config.max_position_embeddings}")
    backbone = AlbertBackbone(config)
    if saved is not None:
        backbone.set_weights(saved.get_weights())
    return task.build_model(backbone, experiment, data)


def build_datasets(experiment, task, data, strategy, tokenizer, skip_steps: int = 0):
    """Distributed (train, per-epoch eval or None). Training repeats and skips the
    batches of the steps already trained, so a resumed run sees the same data."""

    def train_fn(context):
        # Each step takes one batch per replica of this pipeline.
        per_step = context.num_replicas_in_sync // context.num_input_pipelines
        return task.dataset(experiment, data, tokenizer, True, experiment.global_batch_size,
                            context).repeat().skip(skip_steps * per_step)

    def eval_fn(context):
        # The same eval_steps batches at every epoch (all workers run as many).
        return task.dataset(experiment, data, tokenizer, False, experiment.eval_batch_size,
                            context).take(experiment.eval_steps).cache().repeat()

    train = strategy.distribute_datasets_from_function(train_fn)
    evaluation = None
    if experiment.eval_file and experiment.eval_steps:
        evaluation = strategy.distribute_datasets_from_function(eval_fn)
    return train, evaluation


def report_damaged_lines(damaged: list, output_dir: str, chief: bool):
    """skip_damaged_records: each skipped line on stderr, the count in the log and in
    TensorBoard (logs/data, damaged_lines)."""
    import tensorflow as tf

    for problem in damaged:
        print(f"warning: skipped {problem}", file=sys.stderr, flush=True)
    print(f"Damaged lines skipped: {len(damaged)}", flush=True)
    if chief:
        writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs", "data"))
        with writer.as_default():
            tf.summary.scalar("damaged_lines", len(damaged), step=0)
        writer.close()


def write_eval_results(results: dict, output_dir: str, step: int):
    """eval_results.json (NaN as null) and the same numbers as TensorBoard scalars."""
    import tensorflow as tf

    path = os.path.join(output_dir, "eval_results.json")
    write_json(path, {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                      for k, v in results.items()}, indent=2, sort_keys=True)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs", "eval"))
    with writer.as_default():
        for name, value in results.items():
            if isinstance(value, float):
                tf.summary.scalar(name, value, step=step)
    writer.close()


def run(experiment: FinetuneExperiment) -> dict:
    """Trains, then scores eval_file on the chief; returns the eval metrics (else the
    last epoch's logs) with the step. Raises ValueError on a bad
    config or data before training, NonFiniteLossError on a non-finite loss."""
    from albert_keras.tasks import task_named

    task = task_named(experiment.task_type)
    damaged = [] if experiment.skip_damaged_records else None
    data = check_data(experiment, task, damaged)

    from albert_keras.models.model_vocabulary import attach_vocabulary
    from albert_keras.tokenizer import tokenizer_for
    from training.lifecycle import Program, train

    tokenizer = chosen = None

    def setup():  # the tokenizer's resources start TensorFlow: after the strategy
        nonlocal tokenizer, chosen
        chosen = finetuning_vocabulary(experiment)
        tokenizer = tokenizer_for(chosen.vocabulary, lower_case=chosen.lower_case)

    def build_model():
        model = build_task_model(experiment, task, tokenizer.vocab_size, data)
        attach_vocabulary(model, chosen.vocabulary, chosen.lower_case)
        return model

    def prepare(output_dir, chief, step):
        if damaged is not None:
            report_damaged_lines(damaged, output_dir, chief)
        print(f"Fine-tuning on {data.num_train} examples: {task.name}, "
              f"{experiment.total_steps} steps of {experiment.global_batch_size}", flush=True)

    def finish(model, history, output_dir, chief, step):
        if not (experiment.eval_file and chief):
            return None
        # Before the save: a task may give the model the settings it evaluated with.
        results = dict(task.evaluate(model, experiment, data, tokenizer, output_dir),
                       step=step)
        write_eval_results(results, output_dir, step)
        return results

    return train(experiment, Program(
        build_model=build_model,
        datasets=lambda strategy, model, step: build_datasets(
            experiment, task, data, strategy, tokenizer, skip_steps=step),
        compile_options=task.compile_options(experiment),
        setup=setup, prepare=prepare,
        callbacks=lambda output_dir, chief, step: task.callbacks(experiment, data, tokenizer),
        finish=finish))


def finetuning_vocabulary(experiment):
    """The vocabulary to fine-tune with (model_vocabulary.choose_vocabulary): the one
    init_model carries, else spm_model; spm_model over a carried one only with
    replace_vocabulary."""
    from albert_keras import run_directory
    from albert_keras.models.model_vocabulary import choose_vocabulary, read_from_keras_file
    from albert_keras.vocabulary import read_vocabulary

    carried = (read_from_keras_file(run_directory.model_file(experiment.init_model))
               if experiment.init_model else None)
    given = read_vocabulary(experiment.spm_model) if experiment.spm_model else None
    return choose_vocabulary(
        carried, given, False if experiment.cased else None, given_name=experiment.spm_model,
        replace=experiment.replace_vocabulary, model=f"init_model {experiment.init_model}",
        flag="field 'spm_model'", replace_flag="'replace_vocabulary': true",
        cased_flag="field 'cased'")


def main(argv=None):
    try:
        experiment = load_experiment(FinetuneExperiment, argv, description=__doc__)
    except ValueError as error:  # before TensorFlow is imported: a quick answer
        print(f"error: {error}", file=sys.stderr)
        return 2
    from training.callbacks import NonFiniteLossError

    try:
        results = run(experiment)
    except (ValueError, NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from training.model_setup import format_results
    print("eval:" if "num_examples" in results else "final:", format_results(results),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
