"""Sentence-order-prediction (SOP) instances from a tokenized document.

As the reference create_instances_from_document: fill a chunk of consecutive sentences
up to a target length (shorter with probability short_seq_prob), split it at a random
sentence boundary into A and B, swap them with probability 0.5 (label 1 = swapped,
0 = original order), truncate the longer side at a random end until the pair fits.

Unlike the reference, a chunk never takes B from another document: a chunk of one
sentence (a one-sentence document, a sentence longer than the target, a document's
last sentence) is split at a random word boundary inside that sentence, and one of a
single word is skipped (counted in skipped_chunks).
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np

from albert_keras.special_tokens import (SENTENCEPIECE_IDS, WORD_START, WORDPIECE_CONTINUATION,
                                         SpecialIds, is_word_start_piece,
                                         is_wordpiece_word_start)
from albert_keras.wordpiece import is_punctuation


@dataclasses.dataclass
class Instance:
    input_ids: list[int]  # [CLS] A [SEP] B [SEP], unpadded
    segment_ids: list[int]
    token_boundary: list[int]
    label: int  # 1 when A and B were swapped


@dataclasses.dataclass
class InstanceCounts:
    instances: int = 0
    swapped: int = 0
    tokens: int = 0
    skipped_chunks: int = 0
    truncated_tokens: int = 0


def word_start_table(pieces: list[str], kind: str = "sentencepiece") -> np.ndarray:
    """bool [vocab]: whether each piece id starts a whole word, by the rule of the
    vocabulary's kind (SentencePiece's "▁", WordPiece's "##")."""
    rule = is_wordpiece_word_start if kind == "wordpiece" else is_word_start_piece
    return np.array([rule(piece) for piece in pieces], dtype=bool)


def cut_table(pieces: list[str], word_starts: np.ndarray) -> np.ndarray:
    """bool [vocab]: where a one-sentence chunk may be cut into SOP segments: before a
    piece that starts a word and is not punctuation. Cutting before a punctuation mark
    would start the second segment with it (in Chinese, where word boundaries are mostly
    punctuation, nearly always), and a segment that starts with punctuation gives the
    order away once swapped."""
    def punctuation(piece: str) -> bool:
        text = piece.lstrip(WORD_START).removeprefix(WORDPIECE_CONTINUATION)
        return bool(text) and all(map(is_punctuation, text))

    return word_starts & ~np.array([punctuation(piece) for piece in pieces], dtype=bool)


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random):
    """The reference truncate_seq_pair (drop from the front or the back of the longer),
    with bounds instead of deletions. Returns (a, b, dropped)."""
    a_lo, a_hi, b_lo, b_hi = 0, len(a), 0, len(b)
    dropped = 0
    while (a_hi - a_lo) + (b_hi - b_lo) > max_tokens:
        from_a = (a_hi - a_lo) > (b_hi - b_lo)
        front = rng.random() < 0.5
        if from_a:
            a_lo, a_hi = (a_lo + 1, a_hi) if front else (a_lo, a_hi - 1)
        else:
            b_lo, b_hi = (b_lo + 1, b_hi) if front else (b_lo, b_hi - 1)
        dropped += 1
    return a[a_lo:a_hi], b[b_lo:b_hi], dropped


def create_instances(
    document: list[list[int]],
    word_starts: np.ndarray,
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
    counts: InstanceCounts | None = None,
    special: SpecialIds = SENTENCEPIECE_IDS,
    cuts: np.ndarray | None = None,
) -> list[Instance]:
    """SOP instances from one document, a list of sentences as lists of token ids.
    A chunk of several sentences is cut at a sentence boundary; a chunk of one sentence
    before a piece where `cuts` (cut_table; default word_starts) is true."""
    cuts = word_starts if cuts is None else cuts
    counts = counts if counts is not None else InstanceCounts()
    max_tokens = max_seq_length - 3
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_tokens)

    instances = []
    chunk: list[list[int]] = []
    length = 0
    for i, sentence in enumerate(document):
        chunk.append(sentence)
        length += len(sentence)
        if i < len(document) - 1 and length < target:
            continue
        if len(chunk) >= 2:
            a_end = rng.randint(1, len(chunk) - 1)
            a = [t for s in chunk[:a_end] for t in s]
            b = [t for s in chunk[a_end:] for t in s]
        else:
            places = [j for j in range(1, len(sentence)) if cuts[sentence[j]]]
            if not places:
                counts.skipped_chunks += 1
                chunk, length = [], 0
                continue
            cut = rng.choice(places)
            a, b = sentence[:cut], sentence[cut:]
        swapped = rng.random() < 0.5
        if swapped:
            a, b = b, a
        a, b, dropped = _truncate_pair(a, b, max_tokens, rng)
        input_ids = [special.cls, *a, special.sep, *b, special.sep]
        boundary = [1, *word_starts[a].astype(int).tolist(), 1,
                    *word_starts[b].astype(int).tolist(), 1]
        instances.append(Instance(
            input_ids=input_ids,
            segment_ids=[0] * (len(a) + 2) + [1] * (len(b) + 1),
            token_boundary=boundary,
            label=int(swapped),
        ))
        counts.instances += 1
        counts.swapped += int(swapped)
        counts.tokens += len(input_ids)
        counts.truncated_tokens += dropped
        chunk, length = [], 0
    return instances


def pad_instances(instances, max_seq_length: int) -> dict[str, np.ndarray]:
    """input_ids, input_mask, segment_ids, token_boundary as int64 [len(instances),
    max_seq_length], zero-padded."""
    arrays = {
        name: np.zeros([len(instances), max_seq_length], np.int64)
        for name in ("input_ids", "input_mask", "segment_ids", "token_boundary")
    }
    for row, instance in enumerate(instances):
        n = len(instance.input_ids)
        arrays["input_ids"][row, :n] = instance.input_ids
        arrays["input_mask"][row, :n] = 1
        arrays["segment_ids"][row, :n] = instance.segment_ids
        arrays["token_boundary"][row, :n] = instance.token_boundary
    return arrays
