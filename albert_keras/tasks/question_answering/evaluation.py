"""Question answering's evaluation in training.finetune: the SQuAD files, EM/F1 each
epoch, and the final predictions in the official formats.

Evaluation runs the path the exported `answer` signature runs (dataset.py
predict_answers: windows, model, extraction in TensorFlow ops) and scores it with
official_eval.py, the official rules. For SQuAD 2.0 the first pass answers with
the configured null threshold (0.0 unless null_threshold is set); when null_threshold
is not set, the threshold with the best F1 on the eval file (best_f1_thresh) is then
stored in the model's settings and predictions.json is written with it, as the reference does.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from albert_keras.atomic_file import write_json
from albert_keras.tasks.question_answering.squad_files import load_json, read_squad, squad_examples
from albert_keras.tasks.question_answering import cmrc2018_eval
from albert_keras.tasks.question_answering import official_eval as evaluate_squad
from albert_keras.tasks.question_answering.dataset import predict_answers
from albert_keras.tasks.question_answering.settings import AnsweringSettings


class SquadData:
    """The SQuAD files of a fine-tuning run, read and checked, and the settings."""

    def __init__(self, experiment, skipped=None):
        section = experiment.task
        skip = experiment.skip_damaged_records
        self.train = read_squad(experiment.train_file, skip_invalid=skip, skipped=skipped)
        self.num_train = len(self.train)
        # The eval file's content is kept: the official metric reads it as it is.
        self.eval_data = load_json(experiment.eval_file) if experiment.eval_file else None
        self.eval = (squad_examples(self.eval_data, experiment.eval_file, skip, skipped)
                     if experiment.eval_file else [])
        version = section.squad_version
        if version == "auto":
            version = "2.0" if any(e.is_impossible for e in self.train + self.eval) else "1.1"
        self.version_2 = version == "2.0"
        self.settings = AnsweringSettings(section.windows(experiment.seq_length),
                                          section.answers(self.version_2))
        self.search_threshold = self.version_2 and section.null_threshold is None
        self.eval_file = experiment.eval_file
        metric = section.metric
        if metric == "auto":
            metric = ("cmrc2018" if self.eval_data is not None
                      and cmrc2018_eval.is_chinese(self.eval_data) else "squad")
        self.metric = metric


def widened_answers(examples, tokenizer, batch_size: int = 256) -> tuple:
    """(gold answers that start or end inside a piece, all gold answers): the ones that
    training widens to whole pieces (windows.py), counted for the log."""
    contexts = sorted({example.context for example in examples})
    bounds = {}
    for first in range(0, len(contexts), batch_size):
        batch = contexts[first:first + batch_size]
        _, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(batch, tf.string))
        for context, piece_starts, piece_ends in zip(batch, starts.to_list(), ends.to_list()):
            spans = [(s, e) for s, e in zip(piece_starts, piece_ends) if e > s]
            bounds[context] = ({s for s, _ in spans}, {e for _, e in spans})
    widened = total = 0
    for example in examples:
        piece_starts, piece_ends = bounds[example.context]
        for text, start in example.answers:
            total += 1
            widened += start not in piece_starts or start + len(text) not in piece_ends
    return widened, total


def forward_function(model):
    """model(features) as one tf.function for windows of any count and width."""
    spec = tf.TensorSpec([None, None], tf.int32)
    return tf.function(lambda features: model(features, training=False),
                       input_signature=[{name: spec for name in model.input_names}])


def evaluate(model, tokenizer, data: SquadData, settings: AnsweringSettings,
             forward=None) -> tuple:
    """(official metrics, predictions id -> text, null odds id -> score) on the eval file."""
    forward = forward or forward_function(model)
    found = predict_answers(forward, tokenizer, data.eval, settings.windows, settings.answers)
    predictions = {e.qid: a["text"] for e, a in zip(data.eval, found)}
    if data.metric == "cmrc2018" and not data.version_2:
        return cmrc2018_eval.evaluate(data.eval_data, predictions, data.eval_file), \
            predictions, None
    if not data.version_2:
        return evaluate_squad.evaluate_v1(data.eval_data, predictions, data.eval_file), \
            predictions, None
    null_odds = {e.qid: a["null_odds"] for e, a in zip(data.eval, found)}
    # na_prob_thresh inf: exact and f1 score the predictions as written (the null
    # threshold is already applied); best_* search the thresholds over null_odds.
    metrics = evaluate_squad.evaluate_v2(data.eval_data, predictions, null_odds,
                                         na_prob_thresh=float("inf"), source=data.eval_file)
    return metrics, predictions, null_odds


class SquadEvaluation(keras.callbacks.Callback):
    """EM and F1 on the eval file at the end of every epoch, as val_exact and val_f1
    in the logs (listed before TensorBoard and CSVLogger, which record them)."""

    def __init__(self, tokenizer, data: SquadData):
        super().__init__()
        self.tokenizer = tokenizer
        self.data = data
        self.forward = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.data.eval:
            return
        if self.forward is None:
            self.forward = forward_function(self.model)
        metrics, _, _ = evaluate(self.model, self.tokenizer, self.data, self.data.settings,
                                 self.forward)
        logs["val_exact"] = metrics["exact" if self.data.version_2 else "exact_match"]
        logs["val_f1"] = metrics["f1"]


def best_f1_threshold(metrics: dict, null_odds: dict) -> float:
    """The null threshold with the best F1 (answer "" when null_odds exceeds it). The
    official search starts from answering nothing and reports 0.0 when nothing beats
    that, but 0.0 answers every question whose null_odds is below 0: then the threshold
    goes below all of them. No question's null_odds is the threshold returned."""
    threshold = float(metrics["best_f1_thresh"])
    answer_nothing = 100.0 * metrics.get("NoAns_total", 0) / max(metrics["total"], 1)
    if threshold == 0.0 and metrics["best_f1"] <= answer_nothing and null_odds:
        return min(null_odds.values()) - 1.0
    # The official threshold is a question's own score. The exported graph computes
    # scores within float noise of this path, so that question could flip there: take
    # the midpoint to the next score above, which gives every question the same answer.
    above = [score for score in null_odds.values() if score > threshold]
    return (threshold + min(above)) / 2 if above else threshold + 1.0


def final_evaluation(model, tokenizer, data: SquadData, output_dir: str) -> tuple:
    """Scores the eval file, chooses the null threshold (SQuAD 2.0, when not set: the
    first pass's best_f1_thresh, then a second pass answers with it) and writes
    predictions.json (id -> text) and null_odds.json (id -> score, SQuAD 2.0). Returns
    (the metrics of the predictions written, with the first pass's best_exact / best_f1
    and their thresholds; the AnsweringSettings they were answered with)."""
    forward = forward_function(model)
    settings = data.settings
    metrics, predictions, null_odds = evaluate(model, tokenizer, data, settings, forward)
    if data.search_threshold:
        settings = settings.replace(null_threshold=best_f1_threshold(metrics, null_odds))
        searched = {k: v for k, v in metrics.items() if k.startswith("best_")}
        metrics, predictions, null_odds = evaluate(model, tokenizer, data, settings, forward)
        metrics.update(searched)
    if data.version_2:
        metrics["null_threshold"] = settings.answers.null_threshold
        write_json(os.path.join(output_dir, "null_odds.json"), null_odds)
    write_json(os.path.join(output_dir, "predictions.json"), predictions, indent=2)
    return metrics, settings
