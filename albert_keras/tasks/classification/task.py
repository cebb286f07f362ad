"""Sentence and sentence-pair classification and regression (GLUE-style): the Task
objects. Its pieces: settings.py (config sections), data.py (TSV / CSV / JSONL files,
the dataset), metrics.py (GLUE's metrics), models/classifier.py (AlbertClassifier);
serving signatures classify and classify_pair."""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

from albert_keras.models.classifier import AlbertClassifier
from albert_keras.tasks.classification.data import finetune_dataset, read_examples
from albert_keras.tasks.classification.metrics import task_metrics
from albert_keras.tasks.classification.settings import ClassificationConfig, RegressionConfig
from albert_keras.tasks.serving_ops import TEXT
from albert_keras.tasks.task import Task

_TEXT = np.array([b"The quick brown fox jumps over the lazy dog.", b"A short one."])
_TEXT_B = np.array([b"It was a sunny day.", b"Another sentence."])


class ClassificationData:
    """The number of training examples; the files are read again by the datasets."""

    def __init__(self, num_train: int):
        self.num_train = num_train


class ClassificationTask(Task):
    """Classification (name "classification") or regression ("regression")."""

    model_classes = (AlbertClassifier,)
    signature_names = ("classify", "classify_pair")
    example_inputs = {"classify": {"text": _TEXT},
                      "classify_pair": {"text": _TEXT, "text_b": _TEXT_B}}

    def __init__(self, name: str, config_class):
        self.name = name
        self.config_class = config_class

    def _label_names(self, experiment):
        if self.name == "regression":
            return None
        return [str(name) for name in experiment.task.label_names]

    # ------------------------------------------------------------ fine-tuning
    def read_data(self, experiment, damaged):
        counts, pairs = {}, {}
        for field in ("train_file", "eval_file"):
            path = getattr(experiment, field)
            if path:
                _, text_b, labels = read_examples(path, self.name,
                                                  self._label_names(experiment), damaged)
                counts[field], pairs[field] = len(labels), text_b is not None
        if len(set(pairs.values())) > 1:
            raise ValueError("field 'eval_file': has text_b only if train_file has it; "
                             "both hold sentence pairs or both single sentences")
        return ClassificationData(counts["train_file"])

    def build_model(self, backbone, experiment, data):
        labels = self._label_names(experiment)
        return AlbertClassifier(backbone=backbone, num_labels=len(labels) if labels else 1,
                                task_type=self.name,
                                dropout=experiment.task.classifier_dropout,
                                label_names=labels)

    def compile_options(self, experiment) -> dict:
        if self.name == "regression":
            return {"loss": keras.losses.MeanSquaredError()}
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": ["accuracy"]}

    def dataset(self, experiment, data, tokenizer, training, batch_size, input_context=None):
        path = experiment.train_file if training else experiment.eval_file
        return finetune_dataset(path, tokenizer, experiment.seq_length, batch_size,
                                self.name, self._label_names(experiment), training=training,
                                input_context=input_context, seed=experiment.seed,
                                skip_damaged=experiment.skip_damaged_records)

    def evaluate(self, model, experiment, data, tokenizer, output_dir):
        """The metrics over the whole eval file, in file order. Runs outside the replicas
        (no collectives), so the chief can score alone."""
        dataset = self.dataset(experiment, data, tokenizer, False, experiment.eval_batch_size)
        forward = tf.function(lambda features: model(features, training=False),
                              reduce_retracing=True)
        labels, outputs = [], []
        for features, batch_labels in dataset:
            outputs.append(forward(features).numpy())
            labels.append(batch_labels.numpy())
        labels, outputs = np.concatenate(labels), np.concatenate(outputs)
        return dict(task_metrics(self.name, labels, outputs), num_examples=int(len(labels)))

    # ------------------------------------------------------------ serving
    def serves(self, model) -> bool:
        return isinstance(model, AlbertClassifier) and model.task_type == self.name

    def signatures(self, module, settings) -> dict:
        label_names = module.model.label_names or [str(i) for i in
                                                  range(module.model.num_labels)]
        outputs = functools.partial(_classifier_outputs, module.model, self.name, label_names)
        return {"classify": tf.function(lambda text: outputs(module.pack(text)),
                                        input_signature=[TEXT]),
                "classify_pair": tf.function(
                    lambda text, text_b: outputs(module.pack(text, text_b)),
                    input_signature=[TEXT, TEXT])}


def _classifier_outputs(model, task_type, label_names, features):
    logits = tf.cast(model(features, training=False), tf.float32)
    if task_type == "regression":
        return {"score": logits[:, 0]}
    label_id = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
    return {"probabilities": tf.nn.softmax(logits), "logits": logits, "label_id": label_id,
            "label": tf.gather(tf.constant(label_names, tf.string), label_id)}


TASKS = (ClassificationTask("classification", ClassificationConfig),
         ClassificationTask("regression", RegressionConfig))
