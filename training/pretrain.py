"""Pretrain ALBERT (MLM + SOP) with model.fit under a tf.distribute strategy.

    python -m training.pretrain --config training/configs/demo.json [--FIELD VALUE ...]

Restarted with the same command after a kill, it resumes from the last checkpoint in
OUTPUT_DIR/checkpoints and finishes at total_steps with the schedule where it was.
A damaged record file (a copy cut short, a full disk) stops it with one line naming
the file and the byte offset, exit code 2 and the checkpoints kept; with
--skip_damaged_records true it reads each damaged file up to the damage and goes on,
the damaged files logged and counted in TensorBoard (logs/data, damaged_record_files).
Outputs (chief only): OUTPUT_DIR/{experiment.json, checkpoints/, logs/ (TensorBoard),
metrics.csv, final_model.keras, albert_config.json, spm.model}.
"""

from __future__ import annotations

import os
import sys

from training.callbacks import NonFiniteLossError
from training.experiment import PretrainExperiment, load_experiment


def build_datasets(experiment, strategy, vocab_size, special, start_step=0):
    """Distributed training and held-out datasets (random MLM replacements drawn from
    the vocabulary). A resumed run skips the batches of its first start_step steps, so
    it sees the data an uninterrupted run would."""
    from albert_keras.data import pretraining_dataset

    def train_fn(context):
        dataset = pretraining_dataset(
            experiment.train_files, experiment.global_batch_size, experiment.seq_length,
            experiment.max_predictions, input_context=context, training=True,
            seed=experiment.seed, vocab_size=vocab_size, special=special,
            skip_damaged=experiment.skip_damaged_records)
        # Each step takes one batch per replica that this input pipeline feeds.
        replicas_per_pipeline = context.num_replicas_in_sync // context.num_input_pipelines
        return dataset.skip(start_step * replicas_per_pipeline)

    def eval_fn(context):
        dataset = pretraining_dataset(
            experiment.eval_files, experiment.eval_batch_size, experiment.seq_length,
            experiment.max_predictions, input_context=context, training=False,
            vocab_size=vocab_size, special=special,
            skip_damaged=experiment.skip_damaged_records)
        # The same eval_steps batches at every evaluation.
        return dataset.take(experiment.eval_steps).cache().repeat()

    train = strategy.distribute_datasets_from_function(train_fn)
    evaluation = None
    if experiment.eval_files and experiment.eval_steps:
        evaluation = strategy.distribute_datasets_from_function(eval_fn)
    return train, evaluation


def record_files(experiment) -> list:
    from albert_keras.data.pipeline import expand_file_pattern

    patterns = [p for p in (experiment.train_files, experiment.eval_files) if p]
    return [path for pattern in patterns for path in expand_file_pattern(pattern)]


def report_damaged_files(experiment, output_dir: str, chief: bool, step: int) -> int:
    """With skip_damaged_records: finds the damaged files (a full read), says where each
    stops being readable, and logs the count to TensorBoard; returns the count."""
    import tensorflow as tf

    from albert_keras.data.records import find_damage

    damaged = find_damage(record_files(experiment))
    for damage in damaged:
        print(f"warning: skipping the rest of {damage.describe()}", file=sys.stderr,
              flush=True)
    print(f"Damaged record files: {len(damaged)} (skipped from the damage on)", flush=True)
    if chief:
        writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs", "data"))
        with writer.as_default():
            tf.summary.scalar("damaged_record_files", len(damaged), step=step)
        writer.close()
    return len(damaged)


def damaged_data_error(experiment, error, checkpoints):
    """The one-line error for a DataLossError that stopped training."""
    from albert_keras.data.records import CorruptRecordError, find_damage

    damaged = find_damage(record_files(experiment))
    where = damaged[0].describe() if damaged else error.message.strip().splitlines()[0]
    latest = checkpoints.manager.latest_checkpoint or "none yet"
    return CorruptRecordError(
        f"{where}; training stopped, the last checkpoint ({latest}) is kept. "
        f"--skip_damaged_records true reads each damaged file up to the damage and goes on")


def check_record_files(experiment, output_dir: str, chief: bool, step: int):
    """With skip_damaged_records the damaged files are found and reported; without, a
    file cut short is an error before training (found from its record headers)."""
    if experiment.skip_damaged_records:
        report_damaged_files(experiment, output_dir, chief, step)
        return
    from albert_keras.data.records import CorruptRecordError, find_truncation

    truncated = find_truncation(record_files(experiment))
    if truncated:
        raise CorruptRecordError(
            f"{truncated[0].describe()}; --skip_damaged_records true reads each "
            f"damaged file up to the damage and trains on")


def run(experiment: PretrainExperiment) -> dict:
    """Trains; returns the last epoch's logs. Raises on a non-finite loss."""
    import tensorflow as tf

    from albert_keras import AlbertPretrainer
    from albert_keras.models.model_vocabulary import attach_vocabulary
    from albert_keras.special_tokens import SENTENCEPIECE_IDS
    from albert_keras.vocabulary import read_vocabulary
    from training import model_setup
    from training.lifecycle import Program, train

    # The records' special ids are the vocabulary's; without one, ALBERT's SentencePiece
    # layout (ids 0-4) is assumed.
    vocabulary = read_vocabulary(experiment.spm_model) if experiment.spm_model else None
    special = vocabulary.special if vocabulary else SENTENCEPIECE_IDS

    def build_model():
        model = AlbertPretrainer(model_setup.model_config(experiment))
        if experiment.init_checkpoint:  # continue from another model's backbone
            saved = model_setup.load_backbone(experiment.init_checkpoint, "init_checkpoint")
            model.backbone.set_weights(saved.get_weights())
        if vocabulary is not None:
            attach_vocabulary(model, vocabulary, not experiment.cased)
        return model

    def finish(model, history, output_dir, chief, step):
        logs = {k: float(v[-1]) for k, v in history.history.items()} if history else {}
        logs["weights_fingerprint"] = model_setup.weights_fingerprint(model)
        return logs

    def fit_error(error, checkpoints):
        if isinstance(error, tf.errors.DataLossError):
            return damaged_data_error(experiment, error, checkpoints)
        return None

    return train(experiment, Program(
        build_model=build_model,
        datasets=lambda strategy, model, step: build_datasets(
            experiment, strategy, model.config.vocab_size, special, start_step=step),
        prepare=lambda output_dir, chief, step: check_record_files(
            experiment, output_dir, chief, step),
        finish=finish, fit_error=fit_error))


def main(argv=None):
    try:
        experiment = load_experiment(PretrainExperiment, argv, description=__doc__)
        logs = run(experiment)
    except (ValueError, NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from training.model_setup import format_results
    print("final:", format_results(logs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
