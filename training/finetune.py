"""Fine-tune ALBERT for sentence or sentence-pair classification or regression, for
word tagging (part of speech, named entities) or for question answering (SQuAD).

    python -m training.finetune --config training/configs/finetune_demo.json [--FIELD VALUE ...]
    python -m training.finetune --config training/configs/tagging_demo.json
    python -m training.finetune --config training/configs/squad_demo.json

Input: classification and regression read GLUE-style TSV / CSV / JSONL files with the
columns text_a, optional text_b and label (a name from label_names, or a number for
regression). Tagging (task_type tagging) reads CoNLL-U, CoNLL-2003-style columns or
JSONL tokens/tags files (albert_keras/data/tagging.py: the first piece of each word
carries its tag; long sentences are cut into overlapping windows, not truncated).
Question answering (task_type question_answering) reads SQuAD 1.1 / 2.0 JSON
(albert_keras/data/squad_windows.py: long contexts become windows of seq_length
pieces every doc_stride; training/question_answering.py: EM and F1 each epoch).
Text is tokenized in-graph.
The backbone comes from init_model: a .keras file written by training.pretrain
(AlbertPretrainer) or albert_keras.convert, an AlbertBackbone or AlbertClassifier
.keras file, or a directory holding final_model.keras. Its config replaces
model_preset and model_overrides. Without init_model the backbone starts from random
weights (a warning says so).

Restarted with the same command after a kill, it resumes from the last checkpoint in
OUTPUT_DIR/checkpoints. Outputs (chief only): OUTPUT_DIR/{experiment.json,
checkpoints/, logs/ (TensorBoard; logs/eval holds the final eval metrics),
metrics.csv, eval_results.json, final_model.keras (the AlbertClassifier, which
serving.export reads; an AlbertTagger for tagging, an AlbertQuestionAnswerer for
question answering), albert_config.json, spm.model, for tagging eval_predictions.tsv
(word, gold tag, predicted tag per line), for question answering predictions.json and
(SQuAD 2.0) null_odds.json in the official formats}.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys

from albert_keras.atomic_file import write_json
from training.experiment import (FinetuneExperiment, check_batch_split, load_experiment,
                                 write_experiment)


class TaggingData:
    """The tagging files, read and checked: sentences and tag ids of train and eval."""

    def __init__(self, experiment, damaged=None):
        from albert_keras.data import tagging

        def read(path):
            return tagging.read_tagged_file(path, experiment.data_format or None,
                                            experiment.tag_column or None, damaged)

        self.train = read(experiment.train_file)
        self.tag_names = ([str(name) for name in experiment.label_names]
                          if experiment.label_names else tagging.tag_names_of(self.train))
        self.train_ids = tagging.tag_ids(self.train, self.tag_names, experiment.train_file)
        self.eval = read(experiment.eval_file) if experiment.eval_file else []
        self.eval_ids = (tagging.tag_ids(self.eval, self.tag_names, experiment.eval_file)
                         if self.eval else [])
        self.stride = experiment.window_stride or tagging.default_stride(experiment.seq_length)


def check_data(experiment, damaged=None):
    """Reads and checks the train and eval files (errors name the file and line, or
    the SQuAD article, paragraph and question); returns (the number of training
    examples, TaggingData, SquadData or None). With a `damaged` list
    (skip_damaged_records), lines that are not valid UTF-8 (invalid SQuAD questions)
    are skipped and described there."""
    from albert_keras.data import read_examples

    task_data = None
    if experiment.task_type == "tagging":
        task_data = TaggingData(experiment, damaged)
        counts = {"train_file": len(task_data.train)}
    elif experiment.task_type == "question_answering":
        from training.question_answering import SquadData

        task_data = SquadData(experiment, damaged)
        counts = {"train_file": len(task_data.train)}
    else:
        counts, pairs = {}, {}
        for field in ("train_file", "eval_file"):
            path = getattr(experiment, field)
            if path:
                _, text_b, labels = read_examples(path, experiment.task_type,
                                                  experiment.label_names, damaged)
                counts[field], pairs[field] = len(labels), text_b is not None
        if len(set(pairs.values())) > 1:
            raise ValueError("field 'eval_file': has text_b only if train_file has it; "
                             "both hold sentence pairs or both single sentences")
    if counts["train_file"] < experiment.global_batch_size:
        raise ValueError(f"field 'train_file': {counts['train_file']} examples, fewer than one "
                         f"global batch ({experiment.global_batch_size})")
    return counts["train_file"], task_data


def build_task_model(experiment, vocab_size: int, task_data=None):
    """The AlbertClassifier (AlbertTagger for tagging), built in the current strategy
    scope and dtype policy. A loaded backbone is made anew from its config and given
    its weights, whatever model held it (a saved task model's old head is left behind)."""
    from albert_keras import (AlbertBackbone, AlbertClassifier, AlbertQuestionAnswerer,
                              AlbertSquad2Answerer, AlbertTagger)
    from albert_keras.layers.fused_ops import resolve_kernels
    from training import model_setup

    if experiment.init_model:
        saved = model_setup.load_backbone(experiment.init_model, field="init_model")
        config = dataclasses.replace(saved.config, kernels=resolve_kernels(experiment.kernels),
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
    if experiment.task_type == "question_answering":
        from training.question_answering import model_answer_settings

        model_class = (AlbertSquad2Answerer if experiment.qa_head == "squad2"
                       else AlbertQuestionAnswerer)
        return model_class(backbone=backbone, answer_settings=model_answer_settings(task_data))
    if experiment.task_type == "tagging":
        return AlbertTagger(backbone=backbone, tag_names=task_data.tag_names,
                            dropout=experiment.classifier_dropout,
                            window_length=experiment.seq_length,
                            window_stride=task_data.stride)
    labels = experiment.label_names if experiment.task_type == "classification" else None
    return AlbertClassifier(
        backbone=backbone, num_labels=len(labels) if labels else 1,
        task_type=experiment.task_type, dropout=experiment.classifier_dropout,
        label_names=[str(name) for name in labels] if labels else None)


def build_datasets(experiment, strategy, tokenizer, skip_steps: int = 0, task_data=None):
    """Distributed (train, per-epoch eval or None). Training repeats and skips the
    batches of the steps already trained, so a resumed run sees the same data."""
    from albert_keras.data import finetune_dataset, tagging
    from albert_keras.data.squad_dataset import squad_dataset

    def dataset(path, context, training):
        batch_size = experiment.global_batch_size if training else experiment.eval_batch_size
        if experiment.task_type == "question_answering":
            return squad_dataset(task_data.train if training else task_data.eval, tokenizer,
                                 task_data.windows, batch_size, training=training,
                                 input_context=context, seed=experiment.seed)
        if experiment.task_type == "tagging":
            sentences, ids = ((task_data.train, task_data.train_ids) if training
                              else (task_data.eval, task_data.eval_ids))
            return tagging.tagging_dataset(
                sentences, ids, tokenizer, experiment.seq_length, task_data.stride,
                batch_size, training=training, input_context=context, seed=experiment.seed)
        return finetune_dataset(
            path, tokenizer, experiment.seq_length, batch_size,
            experiment.task_type, experiment.label_names, training=training,
            input_context=context, seed=experiment.seed,
            skip_damaged=experiment.skip_damaged_records)

    def train_fn(context):
        # Each step takes one batch per replica of this pipeline.
        per_step = context.num_replicas_in_sync // context.num_input_pipelines
        return dataset(experiment.train_file, context, True).repeat().skip(skip_steps * per_step)

    def eval_fn(context):
        # The same eval_steps batches at every epoch (all workers run as many).
        return dataset(experiment.eval_file, context, False).take(
            experiment.eval_steps).cache().repeat()

    train = strategy.distribute_datasets_from_function(train_fn)
    evaluation = None
    if experiment.eval_file and experiment.eval_steps:
        evaluation = strategy.distribute_datasets_from_function(eval_fn)
    return train, evaluation


def predict(model, experiment, tokenizer):
    """(labels [n], outputs [n, num_labels]) over the whole eval file, in file order.
    Runs outside the replicas (no collectives), so the chief can score alone."""
    import numpy as np
    import tensorflow as tf

    from albert_keras.data import finetune_dataset

    dataset = finetune_dataset(
        experiment.eval_file, tokenizer, experiment.seq_length, experiment.eval_batch_size,
        experiment.task_type, experiment.label_names, training=False)
    forward = tf.function(lambda features: model(features, training=False),
                          reduce_retracing=True)
    labels, outputs = [], []
    for features, batch_labels in dataset:
        outputs.append(forward(features).numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(labels), np.concatenate(outputs)


def evaluate_tagging(model, experiment, tokenizer, task_data, output_dir: str) -> dict:
    """Tags every eval sentence (the path the exported tag_words signature takes) and
    scores the words; writes eval_predictions.tsv (word, gold, predicted; a blank line
    between sentences)."""
    import tensorflow as tf

    from albert_keras.atomic_file import atomic_path
    from albert_keras.data import tagging
    from albert_keras.data.tag_spans import is_entity_tag_set
    from training.metrics import tagging_metrics

    forward = tf.function(lambda features: model(features, training=False),
                          reduce_retracing=True)
    names = task_data.tag_names
    predicted = tagging.predict_tags(forward, tokenizer, task_data.eval,
                                     experiment.seq_length, task_data.stride, names)
    gold = [list(sentence.tags) for sentence in task_data.eval]
    with atomic_path(os.path.join(output_dir, "eval_predictions.tsv")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for sentence, tags in zip(task_data.eval, predicted):
                f.writelines(f"{w}\t{g}\t{p}\n" for w, g, p in zip(sentence.words,
                                                                   sentence.tags, tags))
                f.write("\n")
    return tagging_metrics(gold, predicted, entity_tags=is_entity_tag_set(names))


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
    damaged = [] if experiment.skip_damaged_records else None
    num_train, task_data = check_data(experiment, damaged)

    from training.strategies import WorkerOutput, build_strategy, is_chief

    strategy = build_strategy(experiment.strategy, experiment.num_cpu_devices, experiment.tpu)
    check_batch_split(experiment, strategy.num_replicas_in_sync, experiment.strategy)

    import keras

    from albert_keras.tokenizer import AlbertTokenizer
    from training import model_setup
    from training.callbacks import current_step
    from training.metrics import task_metrics
    from training.question_answering import (SquadEvaluation, final_evaluation,
                                             widened_answers)

    model_setup.set_precision(experiment.precision)
    keras.utils.set_random_seed(experiment.seed)
    tokenizer = AlbertTokenizer.from_file(experiment.spm_model, lower_case=not experiment.cased)
    chief = is_chief(strategy)
    output = WorkerOutput(experiment.output_dir, chief)
    try:
        if chief:
            write_experiment(experiment, os.path.join(output.path, "experiment.json"))
        if damaged is not None:
            report_damaged_lines(damaged, output.path, chief)
        with strategy.scope():
            model = build_task_model(experiment, tokenizer.vocab_size, task_data)
            classification = experiment.task_type == "classification"
            loss = None  # the tagger and question answerer compute their own
            if experiment.task_type in ("classification", "regression"):
                loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                        if classification else keras.losses.MeanSquaredError())
            model.compile(
                optimizer=model_setup.make_optimizer(experiment, model.config.kernels),
                loss=loss, metrics=["accuracy"] if classification else None,
                jit_compile=experiment.jit_compile,
                steps_per_execution=experiment.steps_per_execution,
                gradient_accumulation_steps=experiment.gradient_accumulation_steps)
            # Every worker restores from the chief's directory (a shared file system).
            checkpoint, step = model_setup.restore_latest(
                model, os.path.join(experiment.output_dir, "checkpoints"))
        callbacks, checkpoints = model_setup.standard_callbacks(
            experiment, checkpoint, output.path)
        if experiment.task_type == "question_answering" and task_data.eval:
            callbacks.insert(1, SquadEvaluation(tokenizer, task_data))

        train, evaluation = build_datasets(experiment, strategy, tokenizer, skip_steps=step,
                                           task_data=task_data)
        if experiment.task_type == "question_answering":
            widened, answers = widened_answers(task_data.train, tokenizer)
            print(f"Gold answers that start or end inside a piece, widened to whole pieces: "
                  f"{widened} "
                  f"of {answers}", flush=True)
        print(f"Fine-tuning on {num_train} examples: {experiment.task_type}, "
              f"{experiment.total_steps} steps of {experiment.global_batch_size}", flush=True)
        history = model_setup.fit_to_total_steps(
            model, experiment, train, evaluation, callbacks, checkpoints, step)
        step = current_step(model)

        results = None
        if experiment.eval_file and chief:
            if experiment.task_type == "question_answering":
                # Before saving: it stores the chosen null threshold in the model.
                results = final_evaluation(model, tokenizer, task_data, experiment,
                                           output.path)
                results.update(num_examples=len(task_data.eval), step=step)
            elif experiment.task_type == "tagging":
                results = evaluate_tagging(model, experiment, tokenizer, task_data,
                                           output.path)
                results.update(num_examples=len(task_data.eval), step=step)
            else:
                labels, outputs = predict(model, experiment, tokenizer)
                results = task_metrics(experiment.task_type, labels, outputs)
                results.update(num_examples=int(len(labels)), step=step)
        model_setup.save_final_outputs(model, output.path, chief, experiment.spm_model)
        if results is not None:
            write_eval_results(results, output.path, step)
            return results
        results = {k: float(v[-1]) for k, v in history.history.items()} if history else {}
        results["step"] = step
        return results
    finally:
        output.close()


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
