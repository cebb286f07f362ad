"""Callbacks of the training programs: checkpoints that survive a killed process and
refuse a non-finite loss, and the learning rate and throughput in the logs."""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf


class NonFiniteLossError(RuntimeError):
    pass


def current_step(model) -> int:
    """The optimizer's step count (a distributed variable under a strategy)."""
    return int(model.optimizer.iterations.value.numpy())


class CheckpointEveryEpoch(keras.callbacks.Callback):
    """Saves model + optimizer (whose iterations is the step) at the end of every epoch
    into a tf.train.CheckpointManager that keeps the last N.

    A non-finite epoch loss stops the run before anything is saved, so the last
    checkpoint stays the last good one. tf.train.CheckpointManager updates its index
    file only after the new checkpoint is complete, so a process killed mid-save
    leaves the previous checkpoint as the latest.
    """

    def __init__(self, manager: tf.train.CheckpointManager):
        super().__init__()
        self.manager = manager
        self.non_finite = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or not math.isfinite(float(loss)):
            self.non_finite = (epoch + 1, loss)
            self.model.stop_training = True
            return
        self.manager.save(checkpoint_number=current_step(self.model))


class TrainingRateLogger(keras.callbacks.Callback):
    """Adds learning_rate and sequences_per_second to each epoch's logs. Listed before
    TensorBoard and CSVLogger so that they record both."""

    def __init__(self, global_batch_size: int, steps_per_epoch: int):
        super().__init__()
        self.global_batch_size = global_batch_size
        self.steps_per_epoch = steps_per_epoch
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        elapsed = time.perf_counter() - self._start
        logs["sequences_per_second"] = self.global_batch_size * self.steps_per_epoch / elapsed
        optimizer = self.model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
        rate = inner.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))
