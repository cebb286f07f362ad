"""Exports a trained ALBERT model as a TF Serving SavedModel version, atomically.

    python -m serving.export --model runs/x/final_model.keras \\
        --export_base saved_models/albert [--version N] [--max_seq_length N] [--fusion xla_cpu]

The model's own vocabulary (SentencePiece or WordPiece, saved inside the .keras file)
is exported with it. A .keras file saved before models carried their vocabulary needs
--spm_model (a .model or vocab.txt); --replace_vocabulary exports another one on purpose.

Writes EXPORT_BASE/VERSION/ (the next integer version by default). The version is
written into EXPORT_BASE/.tmp-VERSION-xxxx, a name TF Serving ignores (not an integer),
and renamed to VERSION only when complete, so a server polling EXPORT_BASE never loads a
half-written version. An interrupted export leaves at most a .tmp-* directory behind.

--fusion: how the exported model computes, whatever the model was trained with
(albert_keras.config.FUSIONS; the exporter rebuilds it with that choice and the same
weights, albert_keras.models.with_fusion). "plain" (the default) exports TensorFlow
ops only, which any TF Serving runs. "xla_cpu" exports the encoder's element-wise work
(bias + GELU, residual + LayerNorm, softmax) as XLA-compiled kernels between oneDNN's
matmuls, with row sums as matrix-vector products (for CPU servers): 1.15x the default
export's throughput on an Intel CPU with AMX, level on an AMD one without
(BENCHMARKS.md). "xla" has reductions for row sums instead, meant for GPU servers (not
tested on a GPU here). On CPU, TF Serving must run with
--xla_cpu_compilation_enabled=true, or an XLA version fails at its warm-up requests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import keras
import tensorflow as tf

import albert_keras  # noqa: F401  (registers the model classes for load_model)
from albert_keras import atomic_file, run_directory
from albert_keras.config import FUSIONS
from albert_keras.models import with_fusion
from albert_keras.models.model_vocabulary import carried_vocabulary, choose_vocabulary
from albert_keras.vocabulary import as_vocabulary, read_vocabulary
from albert_keras.tasks import all_tasks
from serving.export_module import AlbertServingModule, serving_task, signature_names
from serving.warmup import example_inputs, write_warmup_file

def load_model(path: str) -> keras.Model:
    """A .keras file, or a directory holding final_model.keras (the training output)."""
    path = run_directory.model_file(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model not found: {path} (expected a .keras file or a "
                                f"directory containing {run_directory.FINAL_MODEL})")
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: expected a .keras file saved by model.save()")
    return keras.saving.load_model(path, compile=False)


def existing_versions(export_base: str) -> list:
    """The integer-named version directories, as TF Serving sees them."""
    if not os.path.isdir(export_base):
        return []
    return sorted(int(name) for name in os.listdir(export_base)
                  if name.isdigit() and os.path.isdir(os.path.join(export_base, name)))


def next_version(export_base: str) -> int:
    versions = existing_versions(export_base)
    return versions[-1] + 1 if versions else 1


def export(model, vocabulary, export_base: str, *,
           version: int | None = None, max_seq_length: int | None = None,
           lower_case: bool | None = None, model_name: str | None = None,
           fusion: str = "plain", allow_vocab_mismatch: bool = False,
           vocab_source: str = "the vocabulary", kernels: str | None = None,
           replace_vocabulary: bool = False, **task_options) -> str:
    """Writes EXPORT_BASE/VERSION atomically; returns that directory's path.

    vocabulary: None for the one the model carries; else a checked vocabulary or a
    vocabulary file's bytes (named in errors as vocab_source), which must be the one the
    model carries unless replace_vocabulary (model_vocabulary.choose_vocabulary).
    lower_case: None for the model's own setting (True when it carries none). The
    vocabulary must have the model's vocab_size pieces unless allow_vocab_mismatch.
    max_seq_length: the task's default (a tagger's or question answerer's fine-tuning
    windows, else max_position_embeddings). task_options: the export options of the
    model's task (albert_keras.tasks: top_k, window_stride, null_threshold,
    squad_version, ...), which replace the settings the model carries. kernels: the
    former name of fusion."""
    fusion = kernels or fusion
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    task = serving_task(model)
    chosen = choose_vocabulary(
        carried_vocabulary(model),
        None if vocabulary is None else as_vocabulary(vocabulary, vocab_source),
        lower_case, replace=replace_vocabulary, model="the model",
        given_name=vocab_source)
    vocabulary, lower_case = chosen.vocabulary, chosen.lower_case
    if not allow_vocab_mismatch:
        vocabulary.check_size(model.config.vocab_size)
    export_base = os.path.abspath(export_base)
    model_name = model_name or os.path.basename(export_base.rstrip(os.sep))
    if max_seq_length is None:
        max_seq_length = (task.serving_length(model) if task
                          else model.config.max_position_embeddings)
    # "plain" by default: TF Serving compiles XLA on CPU only when told to.
    model = with_fusion(model, fusion)
    module = AlbertServingModule(model, vocabulary, max_seq_length=max_seq_length,
                                 lower_case=lower_case, **task_options)
    signatures = module.signatures()
    names = [name for name in signatures if name != "serving_default"]
    for name in names:  # before anything is written
        example_inputs(name, task)
    os.makedirs(export_base, exist_ok=True)
    if version is None:
        version = next_version(export_base)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    final_dir = os.path.join(export_base, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(f"{final_dir} already exists; choose another --version")

    # Written as EXPORT_BASE/.tmp-VERSION-xxxx, renamed to VERSION when complete.
    with atomic_file.atomic_directory(final_dir) as tmp_dir:
        tf.saved_model.save(module, tmp_dir, signatures=signatures)
        write_warmup_file(tmp_dir, model_name, names, task)
    return final_dir


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m serving.export",
        description="Export an ALBERT model as a TF Serving SavedModel with in-graph tokenization.")
    parser.add_argument("--model", required=True,
                        help="a .keras file, or a directory containing final_model.keras")
    parser.add_argument("--spm_model", "--vocab", default=None,
                        help="the vocabulary (SentencePiece .model or WordPiece vocab.txt) "
                             "for a model that carries none; with --replace_vocabulary, "
                             "the one to export instead of the model's")
    parser.add_argument("--replace_vocabulary", action="store_true",
                        help="export --spm_model (and --cased) instead of the vocabulary "
                             "the model carries")
    parser.add_argument("--export_base", required=True,
                        help="the model's base directory, e.g. saved_models/albert")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: the next integer)")
    parser.add_argument("--max_seq_length", type=int, default=None,
                        help="longest packed sequence (default: a tagger's or question "
                             "answerer's fine-tuning windows, else max_position_embeddings)")
    options = {name: settings for task in all_tasks()
               for name, settings in task.export_options.items()}
    for name, settings in options.items():  # the tasks' own (--top_k, --window_stride, ...)
        parser.add_argument(f"--{name}", default=None, **settings)
    parser.add_argument("--cased", action="store_true", default=None,
                        help="the vocabulary is cased (do not lowercase text); a model "
                             "that carries its vocabulary knows this")
    parser.add_argument("--allow_vocab_mismatch", action="store_true",
                        help="export even if the SentencePiece model's piece count is not "
                             "the model's vocab_size (an embedding table padded past the "
                             "vocabulary, say)")
    parser.add_argument("--model_name", default=None,
                        help="model name in the warmup requests (default: export_base's name)")
    parser.add_argument("--fusion", "--kernels", choices=FUSIONS, default="plain",
                        help="how the exported model computes (albert_keras.config.FUSIONS): "
                             "xla_cpu, XLA-compiled element-wise kernels for CPU servers, "
                             "1.15x faster on CPUs with AMX; xla, the same for GPU servers; "
                             "on CPU both need tensorflow_model_server "
                             "--xla_cpu_compilation_enabled=true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model = load_model(args.model)
        vocabulary = read_vocabulary(args.spm_model) if args.spm_model else None
        task_options = {name: getattr(args, name) for task in all_tasks()
                        for name in task.export_options}
        path = export(model, vocabulary, args.export_base, version=args.version,
                      max_seq_length=args.max_seq_length,
                      lower_case=None if args.cased is None else not args.cased,
                      model_name=args.model_name, fusion=args.fusion,
                      allow_vocab_mismatch=args.allow_vocab_mismatch,
                      vocab_source=args.spm_model or "the vocabulary",
                      replace_vocabulary=args.replace_vocabulary, **task_options)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = signature_names(model)
    print(json.dumps({"export_dir": path, "signatures": list(names),
                      "serving_default": names[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
