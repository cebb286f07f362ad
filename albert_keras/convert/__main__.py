"""Command line: convert pretrained weights to a .keras file.

    python -m albert_keras.convert --from transformers DIR --output model.keras
    python -m albert_keras.convert --from tf1 model.ckpt-125000 --config albert_config.json \
        --output model.keras
    python -m albert_keras.convert --from tf1_squad2 model.ckpt-8000 \
        --config albert_config.json --output squad2.keras
    python -m albert_keras.convert --from keras_hub PRESET_OR_DIR --output backbone.keras

transformers gives an AlbertPretrainer (backbone + MLM and SOP heads), or the task model
of an AlbertForTokenClassification (AlbertTagger), AlbertForSequenceClassification
(AlbertClassifier) or AlbertForQuestionAnswering (AlbertQuestionAnswerer) directory; tf1
gives an AlbertPretrainer; tf1_squad2 a checkpoint of the reference run_squad_v2.py
(its SQuAD 2.0 head) as an AlbertSquad2Answerer;
keras_hub gives an AlbertBackbone (keras-hub's backbone has no heads).
"""

import argparse
import sys

import tensorflow as tf

from albert_keras.atomic_file import atomic_path
from albert_keras.convert import (from_keras_hub, from_tf1_checkpoint, from_transformers,
                                  squad2_answerer_from_tf1_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m albert_keras.convert", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True,
                        choices=("transformers", "tf1", "tf1_squad2", "keras_hub"),
                        help="the format of INPUT")
    parser.add_argument("input", help="transformers: a save_pretrained directory; tf1: a "
                        "checkpoint prefix; keras_hub: a preset name or directory")
    parser.add_argument("--config", help="tf1 and tf1_squad2: the reference albert_config.json")
    parser.add_argument("--output", required=True, help="where to write the .keras file")
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error("--output must end in .keras")
    if args.source.startswith("tf1") != (args.config is not None):
        parser.error("--config is required with --from tf1 or tf1_squad2 and only used there")
    return args


def convert(args):
    if args.source == "transformers":
        return from_transformers(args.input)
    if args.source == "tf1":
        return from_tf1_checkpoint(args.input, args.config)
    if args.source == "tf1_squad2":
        return squad2_answerer_from_tf1_checkpoint(args.input, args.config)
    return from_keras_hub(args.input)


def main(argv=None):
    args = parse_args(argv)
    try:
        model = convert(args)
    except (ValueError, KeyError, OSError, tf.errors.OpError) as error:
        # A missing file, a variable the layout lacks, a shape that does not fit: one
        # line and exit code 2, as the other programs report bad input.
        message = error.message if isinstance(error, tf.errors.OpError) else error
        print(f"error: --from {args.source} {args.input}: {message}", file=sys.stderr)
        return 2
    suffix = ".keras" if args.output.endswith(".keras") else ""
    with atomic_path(args.output, suffix=suffix) as tmp:
        model.save(tmp)
    print(f"wrote {args.output}: {type(model).__name__}, {model.count_params():,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
