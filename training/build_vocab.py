"""Train ALBERT's SentencePiece unigram vocabulary.

    python -m training.build_vocab --input 'corpus/*.txt' --vocab_size 30000 \
        --model_prefix vocab/albert [--cased]

Writes PREFIX.model and PREFIX.vocab (each atomically) with "<pad>" 0, "<unk>" 1,
"[CLS]" 2, "[SEP]" 3, "[MASK]" 4. Lines are normalised as the reference does (whitespace
collapsed, NFKD, combining marks dropped, lowercased unless --cased) before training;
the model keeps SentencePiece's default nmt_nfkc rule, as the reference vocabularies do.
Blank lines (document breaks) are ignored.
"""

from __future__ import annotations

import argparse
import sys

from albert_keras.data.corpus import (INPUT_FORMATS, CorpusError, expand_input_pattern,
                                      read_documents)
from albert_keras.vocabulary import train_sentencepiece, write_sentencepiece_model


def corpus_sentences(files, on_invalid_utf8="error", input_format="sentences"):
    for path in files:
        found = False
        for document in read_documents(path, on_invalid_utf8, input_format=input_format):
            for _, sentence in document:
                found = True
                yield sentence
        if not found:
            raise CorpusError(f"{path}: no text (the file is empty or holds only blank lines)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="glob(s), comma-separated")
    parser.add_argument("--vocab_size", type=int, required=True)
    parser.add_argument("--model_prefix", required=True)
    parser.add_argument("--cased", action="store_true", help="do not lowercase")
    parser.add_argument("--max_sentences", type=int, default=10_000_000,
                        help="sample at most this many sentences for training")
    parser.add_argument("--on_invalid_utf8", choices=("error", "skip"), default="error")
    parser.add_argument("--input_format", choices=INPUT_FORMATS, default="sentences",
                        help="sentences: one sentence per line; paragraphs: one paragraph "
                             "per line, split into sentences (as create_pretraining_data)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.vocab_size <= 5:
            raise ValueError("--vocab_size must exceed the 5 special pieces")
        files = expand_input_pattern(args.input)
        proto = train_sentencepiece(
            corpus_sentences(files, args.on_invalid_utf8, args.input_format), args.vocab_size,
            lower_case=not args.cased, max_sentences=args.max_sentences,
        )
    except (CorpusError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model_path, vocab_path = write_sentencepiece_model(proto, args.model_prefix)
    print(f"wrote {model_path} and {vocab_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
