"""What the studies (tagging_study, squad_study) share: one training.finetune run of a
config, from the pretrained backbone or from random weights of its shape."""

from __future__ import annotations

import os

from albert_keras import run_directory

STARTS = ("pretrained", "random")


def finetune_from(start: str, config: str, output: str, init_model: str,
                  total_steps: int = 0, **files) -> dict:
    """Runs training.finetune with `config`, writing to `output`; start "pretrained"
    fine-tunes init_model (a pretraining output directory), "random" its config from
    random weights. files: train_file, eval_file. total_steps 0: the config's."""
    from training import finetune
    from training.experiment import FinetuneExperiment, load_experiment

    flags = ["--config", config, "--output_dir", output,
             "--spm_model", os.path.join(init_model, "spm.model")]
    for name, path in files.items():
        flags += [f"--{name}", path]
    if start == "pretrained":
        flags += ["--init_model", init_model]
    else:
        flags += ["--init_model", "",
                  "--model_config_file", os.path.join(init_model, "albert_config.json")]
    if total_steps:
        flags += ["--total_steps", str(total_steps)]
    experiment = load_experiment(FinetuneExperiment, flags, description="")
    return finetune.run(experiment)


def missing_backbone_files(init_model: str) -> list:
    """The files a study needs from the pretraining output that are not there."""
    return [name for name in (run_directory.FINAL_MODEL, run_directory.SENTENCEPIECE_MODEL,
                              run_directory.MODEL_CONFIG)
            if not os.path.isfile(os.path.join(init_model, name))]


def add_study_arguments(parser, output_dir: str):
    """The flags every study takes (its data source flags are its own)."""
    parser.add_argument("--init_model", default="runs/demo",
                        help="the pretraining output directory (final_model.keras, "
                             "spm.model, albert_config.json)")
    parser.add_argument("--output_dir", default=output_dir)
    parser.add_argument("--total_steps", type=int, default=0,
                        help="override the config's steps (for a quick look)")
    parser.add_argument("--prepare_only", action="store_true", help="write the split and stop")
