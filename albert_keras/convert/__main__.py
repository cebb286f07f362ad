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

The converted model carries its vocabulary (fine-tuning and export then need no
vocabulary flag): --vocab, else the file that came with the checkpoint
(albert_keras/convert/vocabulary_files.py: vocab_chinese.txt, vocab.txt, spiece.model,
30k-clean.model, a keras-hub preset's vocabulary.spm).
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
    parser.add_argument("--vocab", default=None,
                        help="the model's vocabulary (SentencePiece .model or WordPiece "
                             "vocab.txt); default: the one that came with the checkpoint")
    parser.add_argument("--cased", action="store_true", default=None,
                        help="the vocabulary is cased (default: tokenizer_config.json's "
                             "do_lower_case for transformers, else lowercased)")
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


def carried_vocabulary_of(args):
    """(vocabulary, lower_case, path) for the converted model, or None."""
    from albert_keras.convert.vocabulary_files import (checkpoint_directories,
                                                       find_vocabulary, lower_case_of)
    from albert_keras.vocabulary import read_vocabulary

    directories = checkpoint_directories(args.source, args.input, args.config)
    path = args.vocab or find_vocabulary(directories)
    if path is None:
        return None
    lower_case = (not args.cased if args.cased is not None
                  else lower_case_of(args.input) if args.source == "transformers" else True)
    return read_vocabulary(path), lower_case, path


def main(argv=None):
    args = parse_args(argv)
    try:
        model = convert(args)
        vocabulary = carried_vocabulary_of(args)
        if vocabulary is not None:
            from albert_keras.models.model_vocabulary import attach_vocabulary

            attach_vocabulary(model, vocabulary[0], vocabulary[1])
            if vocabulary[0].size != model.config.vocab_size:
                raise ValueError(f"{vocabulary[2]} has {vocabulary[0].size} pieces but the "
                                 f"checkpoint's vocab_size is {model.config.vocab_size}")
    except (ValueError, KeyError, OSError, tf.errors.OpError) as error:
        # A missing file, a variable the layout lacks, a shape that does not fit: one
        # line and exit code 2, as the other programs report bad input.
        message = error.message if isinstance(error, tf.errors.OpError) else error
        print(f"error: --from {args.source} {args.input}: {message}", file=sys.stderr)
        return 2
    suffix = ".keras" if args.output.endswith(".keras") else ""
    with atomic_path(args.output, suffix=suffix) as tmp:
        model.save(tmp)
    carried = ("no vocabulary found: give --vocab, or --spm_model to the programs later"
               if vocabulary is None else
               f"with its vocabulary {vocabulary[2]} ({vocabulary[0].kind}, "
               f"{vocabulary[0].size} pieces, {'lowercased' if vocabulary[1] else 'cased'})")
    print(f"wrote {args.output}: {type(model).__name__}, {model.count_params():,} "
          f"parameters, {carried}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
