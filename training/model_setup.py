"""What pretraining and fine-tuning set up the same way: precision, the model config,
the optimizer, checkpoint restore, and the callbacks."""

from __future__ import annotations

import os
import shutil
import sys

import keras
import tensorflow as tf

from albert_keras import AlbertConfig, atomic_file, run_directory
from albert_keras.atomic_file import atomic_path
from albert_keras.models.model_vocabulary import carried_vocabulary
from albert_keras.optimization import create_optimizer
from albert_keras.layers.fused_ops import resolve_fusion
from albert_keras.vocabulary import read_vocabulary
from training.callbacks import (CheckpointEveryEpoch, NonFiniteLossError, TrainingRateLogger,
                                current_step)


def set_precision(precision: str):
    """The dtype policy of the models built next."""
    keras.config.set_dtype_policy(precision)


def model_config(options) -> AlbertConfig:
    """The config from a preset or a file, with overrides and the run's fusion and
    remat; vocab_size follows the SentencePiece model when one is given."""
    if options.model_config_file:
        config = AlbertConfig.from_json_file(options.model_config_file)
        values = config.to_dict()
    else:
        values = AlbertConfig.from_preset(options.model_preset).to_dict()
    values.update(options.model_overrides)
    if options.spm_model:
        values["vocab_size"] = read_vocabulary(options.spm_model).size
    values["max_position_embeddings"] = max(values["max_position_embeddings"], options.seq_length)
    values["fusion"] = resolve_fusion(options.fusion)
    values["remat"] = options.remat
    return AlbertConfig.from_dict(values, origin="model config")


def make_optimizer(options, fusion: str):
    """The run's optimizer; fusion: the model's (config.fusion), for LAMB's update."""
    return create_optimizer(
        options.optimizer, learning_rate=options.learning_rate, total_steps=options.total_steps,
        warmup_steps=options.warmup_steps, weight_decay=options.weight_decay,
        beta_1=options.beta_1, beta_2=options.beta_2, epsilon=options.epsilon,
        clip_norm=options.clip_norm, fusion=fusion)


def restore_latest(model, checkpoint_dir: str) -> tuple[tf.train.Checkpoint, int]:
    """Restores model and optimizer from the newest checkpoint in checkpoint_dir, if
    any; returns the checkpoint object and the step it holds (0 when fresh)."""
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    latest = tf.train.latest_checkpoint(checkpoint_dir) if os.path.isdir(checkpoint_dir) else None
    if latest:
        model.optimizer.build(model.trainable_variables)
        checkpoint.restore(latest).assert_existing_objects_matched()
        print(f"Resumed from {latest} at step {current_step(model)}", flush=True)
    return checkpoint, current_step(model)


def standard_callbacks(options, checkpoint, output_dir: str):
    """Rate logger, checkpoints, TensorBoard, a plain per-epoch CSV log."""
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(output_dir, "checkpoints"), max_to_keep=options.keep_checkpoints)
    profile = (tuple(int(v) for v in options.profile_steps.split(","))
               if options.profile_steps else 0)
    checkpoints = CheckpointEveryEpoch(manager)
    callbacks = [
        TrainingRateLogger(options.global_batch_size, options.steps_per_epoch),
        checkpoints,
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"), profile_batch=profile),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "metrics.csv"), append=True),
    ]
    return callbacks, checkpoints


def fit_to_total_steps(model, options, train, evaluation, callbacks, checkpoints, step: int):
    """model.fit from `step` to options.total_steps, an epoch per checkpoint; returns
    the History (None when already done). Raises NonFiniteLossError when the loss
    stopped being finite, naming the last good checkpoint."""
    epochs = options.total_steps // options.steps_per_epoch
    initial_epoch = step // options.steps_per_epoch
    history = None
    if initial_epoch < epochs:
        history = model.fit(
            train, validation_data=evaluation, epochs=epochs, initial_epoch=initial_epoch,
            steps_per_epoch=options.steps_per_epoch,
            validation_steps=options.eval_steps if evaluation else None,
            callbacks=callbacks, shuffle=False, verbose=fit_verbosity())
    if checkpoints.non_finite:
        epoch, loss = checkpoints.non_finite
        raise NonFiniteLossError(
            f"loss became {loss} in epoch {epoch}; stopped. The last good checkpoint is "
            f"{checkpoints.manager.latest_checkpoint}")
    return history


def fit_verbosity() -> int:
    """The progress bar on a terminal, one plain line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2


def copy_into(path: str, directory: str, name: str) -> str:
    target = os.path.join(directory, name)
    if os.path.abspath(path) != os.path.abspath(target):
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
    return target


def save_final_outputs(model, output_dir: str, chief: bool, spm_model: str | None):
    """OUTPUT_DIR/final_model.keras (with the vocabulary it carries), and on the chief
    albert_config.json and the vocabulary file (spm.model or vocab.txt): what
    fine-tuning, the studies and the exporter read."""
    save_model_atomically(model, os.path.join(output_dir, run_directory.FINAL_MODEL))
    if chief:
        model.config.to_json_file(os.path.join(output_dir, run_directory.MODEL_CONFIG),
                                  format="internal")
        carried = carried_vocabulary(model)
        if carried is not None:
            atomic_file.write_bytes(
                os.path.join(output_dir, run_directory.VOCABULARY_FILES[carried.vocabulary.kind]),
                carried.vocabulary.file_bytes)
        elif spm_model:
            copy_into(spm_model, output_dir, run_directory.SENTENCEPIECE_MODEL)


def format_results(results: dict) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in sorted(results.items()))


def save_model_atomically(model, path: str):
    with atomic_path(path, suffix=".keras") as tmp:  # Keras saves only to *.keras
        model.save(tmp)


def weights_fingerprint(model) -> str:
    """A short hash of all weights, to check that replicas and workers agree."""
    import hashlib

    import numpy as np
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.asarray(weight.value.numpy(), "float32").tobytes())
    return digest.hexdigest()[:16]


def load_backbone(path: str, field: str):
    """The AlbertBackbone in a .keras file (a backbone itself, or any model with a
    .backbone: pretrainer, classifier) or in DIRECTORY/final_model.keras. field names
    the config field in errors."""
    from albert_keras import AlbertBackbone

    path = run_directory.model_file(path)
    model = keras.saving.load_model(path, compile=False)
    backbone = model if isinstance(model, AlbertBackbone) else getattr(model, "backbone", None)
    if not isinstance(backbone, AlbertBackbone):
        raise ValueError(f"field '{field}': {path} holds a {type(model).__name__}, "
                         f"not an ALBERT model with a backbone")
    return backbone
