"""Checks an exported tagger against the evaluation path, sentence by sentence.

    python -m serving.check_tagger --model runs/demo_tagging/run --spm_model runs/demo/spm.model \\
        --export_dir saved_models/albert_tagger/1 --data FILE [--data FILE ...]

For every sentence of the tagged files (CoNLL-U, CoNLL columns or JSONL), the SavedModel's
`tag_words` (given the file's own words) must give the tags that fine-tuning's evaluation
gives with the Keras model (albert_keras.tasks.tagging.data.predict_tags, the same
windows). Prints {"sentences", "words", "same_sentences", "same_words"} as JSON and
exits 0 when every tag agrees, 1 otherwise (listing the first sentences that differ).
"""

from __future__ import annotations

import argparse
import json
import sys

import keras
import tensorflow as tf

import albert_keras  # noqa: F401  (registers the model classes for load_model)
from albert_keras.tasks.tagging import data as tagging
from albert_keras.models.model_vocabulary import carried_vocabulary, choose_vocabulary
from albert_keras.tokenizer import tokenizer_for
from albert_keras.vocabulary import read_vocabulary
from serving.export import load_model


def compare(model, tokenizer, export_dir: str, sentences, batch_size: int = 32) -> dict:
    loaded = tf.saved_model.load(export_dir)
    served = []
    for begin in range(0, len(sentences), batch_size):
        rows = [list(s.words) for s in sentences[begin:begin + batch_size]]
        width = max(len(r) for r in rows)
        out = loaded.signatures["tag_words"](
            words=tf.constant([r + [""] * (width - len(r)) for r in rows]))
        served += [[t.decode() for t in row[:n]]
                   for row, n in zip(out["tags"].numpy(), out["word_count"].numpy())]
    forward = tf.function(lambda features: model(features, training=False),
                          reduce_retracing=True)
    evaluated = tagging.predict_tags(forward, tokenizer, sentences,
                                     model.settings.window_length,
                                     model.settings.window_stride, model.tag_names)
    differ = [i for i, (a, b) in enumerate(zip(served, evaluated)) if a != b]
    return {"sentences": len(sentences), "words": sum(len(s) for s in served),
            "same_sentences": len(sentences) - len(differ),
            "same_words": sum(x == y for a, b in zip(served, evaluated) for x, y in zip(a, b)),
            "first_differences": differ[:5]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.check_tagger",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the tagger's .keras file or run dir")
    parser.add_argument("--spm_model", "--vocab", default=None,
                        help="the vocabulary, for a model that carries none")
    parser.add_argument("--export_dir", required=True, help="the SavedModel version directory")
    parser.add_argument("--data", action="append", required=True, help="a tagged file")
    parser.add_argument("--cased", action="store_true", default=None)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    if not isinstance(model, albert_keras.AlbertTagger) or model.settings is None:
        print(f"error: {args.model} is not a fine-tuned AlbertTagger", file=sys.stderr)
        return 2
    try:
        chosen = choose_vocabulary(
            carried_vocabulary(model), read_vocabulary(args.spm_model) if args.spm_model else None,
            None if args.cased is None else not args.cased, replace=False, model=args.model,
            given_name=args.spm_model or "")
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tokenizer = tokenizer_for(chosen.vocabulary, lower_case=chosen.lower_case)
    sentences = [s for path in args.data for s in tagging.read_tagged_file(path)]
    result = compare(model, tokenizer, args.export_dir, sentences)
    print(json.dumps(result))
    return 0 if result["same_sentences"] == result["sentences"] else 1


if __name__ == "__main__":
    keras.config.disable_interactive_logging()
    sys.exit(main())
