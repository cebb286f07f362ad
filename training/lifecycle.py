"""The training lifecycle that training.pretrain and training.finetune share, written
once: strategy and batch split, precision and seed, the run directory, the model built
and compiled in the strategy's scope, the restore of the last checkpoint, the
callbacks, fit to total_steps, the program's own finish, and the final save.

A program gives what differs as a Program: its model, its datasets from a step, and
optionally compile options, callbacks, a finish and a translation of fit's errors."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from training.experiment import check_batch_split, write_experiment


def _no_callbacks(output_dir: str, chief: bool, step: int) -> list:
    return []


@dataclasses.dataclass
class Program:
    """What a training program adds to the lifecycle.

    setup():                                  first, once the strategy is made (before
                                              it nothing may start TensorFlow's runtime:
                                              a strategy fixes the logical devices)
    build_model():                            the model, called in the strategy scope
    datasets(strategy, model, step):          (train, eval or None), the train batches
                                              of the steps before `step` skipped
    compile_options:                          extra model.compile arguments (a loss)
    prepare(output_dir, chief, step):         before the datasets (data checks, logs)
    callbacks(output_dir, chief, step):       put before TensorBoard and the CSV log,
                                              which then record the metrics they add
    finish(model, history, output_dir, chief, step): after fit, before the final save
                                              (on every worker); returns the results
    fit_error(error, checkpoints):            an exception fit raised -> the one to
                                              raise instead (None: the same)
    """

    build_model: Callable
    datasets: Callable
    setup: Callable | None = None
    compile_options: dict = dataclasses.field(default_factory=dict)
    prepare: Callable | None = None
    callbacks: Callable = _no_callbacks
    finish: Callable | None = None
    fit_error: Callable | None = None


def train(experiment, program: Program) -> dict:
    """Runs the lifecycle; returns the program's results (its finish's), else the last
    epoch's logs, with "step"."""
    from training.strategies import WorkerOutput, build_strategy, is_chief

    strategy = build_strategy(experiment.strategy, experiment.num_cpu_devices, experiment.tpu)
    check_batch_split(experiment, strategy.num_replicas_in_sync, experiment.strategy)

    import keras

    from training import model_setup
    from training.callbacks import current_step

    model_setup.set_precision(experiment.precision)
    keras.utils.set_random_seed(experiment.seed)
    if program.setup:
        program.setup()
    chief = is_chief(strategy)
    output = WorkerOutput(experiment.output_dir, chief)
    try:
        if chief:
            write_experiment(experiment, os.path.join(output.path, "experiment.json"))
        with strategy.scope():
            model = program.build_model()
            model.compile(
                optimizer=model_setup.make_optimizer(experiment, model.config.fusion),
                jit_compile=experiment.jit_compile,
                steps_per_execution=experiment.steps_per_execution,
                gradient_accumulation_steps=experiment.gradient_accumulation_steps,
                **program.compile_options)
            # Every worker restores from the chief's directory (a shared file system).
            checkpoint, step = model_setup.restore_latest(
                model, os.path.join(experiment.output_dir, "checkpoints"))
        callbacks, checkpoints = model_setup.standard_callbacks(
            experiment, checkpoint, output.path)
        callbacks[1:1] = program.callbacks(output.path, chief, step)
        if program.prepare:
            program.prepare(output.path, chief, step)
        train_data, evaluation = program.datasets(strategy, model, step)
        try:
            history = model_setup.fit_to_total_steps(
                model, experiment, train_data, evaluation, callbacks, checkpoints, step)
        except Exception as error:
            replacement = program.fit_error(error, checkpoints) if program.fit_error else None
            if replacement is None:
                raise
            raise replacement from None
        step = current_step(model)
        results = (program.finish(model, history, output.path, chief, step)
                   if program.finish else None)
        model_setup.save_final_outputs(model, output.path, chief, experiment.spm_model)
        if results is None:
            results = ({k: float(v[-1]) for k, v in history.history.items()}
                       if history else {})
        results["step"] = step
        return results
    finally:
        output.close()
