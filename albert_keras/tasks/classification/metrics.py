"""Fine-tuning task metrics over a whole evaluation set, in numpy (GLUE's choices:
accuracy, F1, Matthews correlation; Pearson and Spearman for regression).

A correlation whose inputs are constant is undefined and returned as NaN.
"""

from __future__ import annotations

import math

import numpy as np


def accuracy(labels, predictions) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions))


def f1_score(labels, predictions, positive: int = 1) -> float:
    """F1 of class `positive`; 0 when it is never predicted and never true."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    true_positive = np.sum((predictions == positive) & (labels == positive))
    predicted = np.sum(predictions == positive)
    actual = np.sum(labels == positive)
    if predicted + actual == 0:
        return 0.0
    return float(2 * true_positive / (predicted + actual))


def matthews_corrcoef(labels, predictions, num_classes: int) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K, which is the
    usual MCC for two): 0 when every prediction or every label is one class."""
    confusion = np.zeros([num_classes, num_classes], np.float64)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predictions)), 1)
    total = confusion.sum()
    correct = np.trace(confusion)
    true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    numerator = correct * total - np.dot(true_counts, predicted_counts)
    denominator = math.sqrt((total ** 2 - np.dot(predicted_counts, predicted_counts))
                            * (total ** 2 - np.dot(true_counts, true_counts)))
    return float(numerator / denominator) if denominator else 0.0


def pearson(x, y) -> float:
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denominator) if denominator else math.nan


def average_ranks(values) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they span."""
    values = np.asarray(values, np.float64).ravel()
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), np.float64)
    ranks[order] = ((starts + ends + 1) / 2)[group]
    return ranks


def spearman(x, y) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def task_metrics(task_type: str, labels, outputs) -> dict:
    """The metrics of a task from labels [n] and model outputs (logits [n, classes],
    or scores [n, 1] for regression), with the loss the model trains on."""
    outputs = np.asarray(outputs, np.float64)
    if task_type == "regression":
        scores = outputs.reshape(-1)
        labels = np.asarray(labels, np.float64).reshape(-1)
        return {"mse": float(np.mean((scores - labels) ** 2)),
                "pearson": pearson(scores, labels), "spearman": spearman(scores, labels)}
    labels = np.asarray(labels, np.int64).reshape(-1)
    num_classes = outputs.shape[-1]
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    predictions = outputs.argmax(axis=-1)
    results = {"loss": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
               "accuracy": accuracy(labels, predictions),
               "matthews_corrcoef": matthews_corrcoef(labels, predictions, num_classes)}
    if num_classes == 2:
        results["f1"] = f1_score(labels, predictions, positive=1)
    return results
