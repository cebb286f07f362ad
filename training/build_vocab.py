"""Train ALBERT's SentencePiece unigram vocabulary.

    python -m training.build_vocab --input 'corpus/*.txt' --vocab_size 30000 \
        --model_prefix vocab/albert [--cased] [--input_format paragraphs] \
        [--character_coverage 0.9995] [--byte_fallback] [--split_cjk]
        [--max_sentences N --seed S]

Writes PREFIX.model and PREFIX.vocab (each atomically) with "<pad>" 0, "<unk>" 1,
"[CLS]" 2, "[SEP]" 3, "[MASK]" 4. Lines are normalised as the reference does (whitespace
collapsed, NFKD, combining marks dropped, lowercased unless --cased) before training;
the model keeps SentencePiece's default nmt_nfkc rule, as the reference vocabularies do.
Blank lines (document breaks) are ignored; with --input_format paragraphs each line is
split into sentences first (albert_keras/data/sentences.py).

For Chinese: --split_cjk makes every CJK ideograph a piece of its own, as BERT's
tokenizer does (the Chinese ALBERTs' choice: pieces of several characters leave answer
and word boundaries unreachable); the mode is stored in the model (the ideographs are
SentencePiece user-defined symbols), so every stage applies it. --character_coverage
1.0 keeps every character (SentencePiece's default 0.9995 maps the rarest to <unk>),
--byte_fallback writes characters outside the vocabulary as their UTF-8 bytes. SentencePiece silently skips lines
longer than --max_sentence_length bytes: here such a line is an error naming it, or
with --long_lines skip a counted warning. More than --max_sentences sentences are
sampled down, the same ones for the same --seed. The <unk> share of the corpus's first
10,000 sentences is printed.
"""

from __future__ import annotations

import argparse
import itertools
import sys

from albert_keras.data.corpus import (INPUT_FORMATS, CorpusError, expand_input_pattern,
                                      read_documents)
from albert_keras.text_normalization import normalize_text
from albert_keras.vocabulary import train_normalized, unknown_rate, write_sentencepiece_model

UNKNOWN_SAMPLE = 10_000


def corpus_sentences(files, on_invalid_utf8="error", input_format="sentences",
                     with_places=False):
    """Each sentence of the files (with its "path:line" when with_places)."""
    for path in files:
        found = False
        for document in read_documents(path, on_invalid_utf8, input_format=input_format):
            for number, sentence in document:
                found = True
                yield (f"{path}:{number}", sentence) if with_places else sentence
        if not found:
            raise CorpusError(f"{path}: no text (the file is empty or holds only blank lines)")


class LongLines:
    """Passes the sentences on normalised (vocabulary.normalized_sentences); one longer
    than max_bytes (SentencePiece would drop it silently) is an error naming it, or with
    skip=True counted and left out."""

    def __init__(self, places_and_sentences, max_bytes: int, lower_case: bool, skip: bool):
        self.source, self.max_bytes = places_and_sentences, max_bytes
        self.lower_case, self.skip = lower_case, skip
        self.count = self.skipped = 0
        self.first = None

    def __iter__(self):
        for place, sentence in self.source:
            self.count += 1
            sentence = normalize_text(sentence, self.lower_case)
            size = len(sentence.encode("utf-8"))
            if size > self.max_bytes:
                if not self.skip:
                    raise CorpusError(
                        f"{place}: a line of {size} bytes, longer than --max_sentence_length "
                        f"{self.max_bytes}, which SentencePiece would drop; raise "
                        f"--max_sentence_length, split paragraphs with --input_format "
                        f"paragraphs, or leave such lines out with --long_lines skip")
                self.skipped += 1
                self.first = self.first or place
                continue
            if sentence:
                yield sentence


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="glob(s), comma-separated")
    parser.add_argument("--vocab_size", type=int, required=True)
    parser.add_argument("--model_prefix", required=True)
    parser.add_argument("--cased", action="store_true", help="do not lowercase")
    parser.add_argument("--max_sentences", type=int, default=10_000_000,
                        help="sample at most this many sentences for training")
    parser.add_argument("--seed", type=int, default=0, help="the sampling's seed")
    parser.add_argument("--on_invalid_utf8", choices=("error", "skip"), default="error")
    parser.add_argument("--input_format", choices=INPUT_FORMATS, default="sentences",
                        help="sentences: one sentence per line; paragraphs: one paragraph "
                             "per line, split into sentences (as create_pretraining_data)")
    parser.add_argument("--character_coverage", type=float, default=0.9995,
                        help="the share of characters the pieces cover (1.0: all)")
    parser.add_argument("--byte_fallback", action="store_true",
                        help="characters outside the vocabulary become UTF-8 byte pieces")
    parser.add_argument("--split_cjk", action="store_true",
                        help="every CJK ideograph a piece of its own (BERT's rule)")
    parser.add_argument("--max_sentence_length", type=int, default=4192,
                        help="the longest line, in bytes, SentencePiece trains on")
    parser.add_argument("--long_lines", choices=("error", "skip"), default="error",
                        help="a longer line: an error naming it, or skipped and counted")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    lower_case = not args.cased
    try:
        if args.vocab_size <= 5:
            raise ValueError("--vocab_size must exceed the 5 special pieces")
        if not 0 < args.character_coverage <= 1:
            raise ValueError("--character_coverage must be in (0, 1]")
        files = expand_input_pattern(args.input)
        lines = LongLines(corpus_sentences(files, args.on_invalid_utf8, args.input_format,
                                           with_places=True),
                          args.max_sentence_length, lower_case, args.long_lines == "skip")
        proto = train_normalized(
            lines, args.vocab_size, max_sentences=args.max_sentences,
            character_coverage=args.character_coverage, byte_fallback=args.byte_fallback,
            max_sentence_length=args.max_sentence_length, seed=args.seed,
            split_cjk=args.split_cjk)
    except (CorpusError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if lines.skipped:
        print(f"WARNING: {lines.skipped} of {lines.count} lines ({lines.skipped / lines.count:.1%}) "
              f"were longer than --max_sentence_length {args.max_sentence_length} bytes and "
              f"left out of training (the first: {lines.first})", file=sys.stderr)
    model_path, vocab_path = write_sentencepiece_model(proto, args.model_prefix)
    sample = list(itertools.islice(
        corpus_sentences(files, args.on_invalid_utf8, args.input_format), UNKNOWN_SAMPLE))
    unknown = unknown_rate(proto, sample, lower_case)
    print(f"wrote {model_path} and {vocab_path}; <unk>: "
          f"{unknown['unknown_pieces'] / max(unknown['pieces'], 1):.3%} of the pieces and "
          f"{unknown['unknown_characters'] / max(unknown['characters'], 1):.3%} of the "
          f"characters of the first {len(sample):,} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
