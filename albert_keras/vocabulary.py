"""ALBERT's SentencePiece vocabulary, offline: training, writing, reading and checking
the model proto. The in-graph tokenizer that uses it is albert_keras.tokenizer.

The model is a unigram SentencePiece model trained on normalised text
(text_normalization.normalize_text) with the special pieces of albert_keras.special_tokens
at ids 0-4 and SentencePiece's nmt_nfkc rule, as the reference vocabularies.
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Iterable

import sentencepiece as spm

from albert_keras import atomic_file
from albert_keras.special_tokens import PAD_ID, SPECIAL_PIECES, UNK_ID
from albert_keras.text_normalization import normalize_text


def check_special_pieces(model_proto: bytes,
                         source: str = "the SentencePiece model") -> spm.SentencePieceProcessor:
    """Raises ValueError unless ids 0-4 are <pad> <unk> [CLS] [SEP] [MASK]; returns the
    loaded processor."""
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model_proto)
    except Exception as error:  # sentencepiece raises RuntimeError/OSError variants
        raise ValueError(f"{source} is not a SentencePiece model: {error}") from None
    size = processor.get_piece_size()
    found = [processor.id_to_piece(i) if i < size else None for i in range(len(SPECIAL_PIECES))]
    if tuple(found) != SPECIAL_PIECES:
        raise ValueError(
            f"{source} lacks ALBERT's special pieces: ids 0-4 must be "
            f"{list(SPECIAL_PIECES)}, found {found}. Build it with training.build_vocab."
        )
    return processor


@dataclasses.dataclass(frozen=True, eq=False)
class SentencePieceVocabulary:
    """A SentencePiece model read and checked once, where it enters a program: the proto
    bytes the in-graph tokenizer runs, its pieces by id, and where it came from (named
    in errors)."""

    model_proto: bytes
    pieces: tuple
    source: str = "the SentencePiece model"

    @classmethod
    def from_proto(cls, model_proto: bytes,
                   source: str = "the SentencePiece model") -> "SentencePieceVocabulary":
        processor = check_special_pieces(model_proto, source)
        pieces = tuple(processor.id_to_piece(i) for i in range(processor.get_piece_size()))
        return cls(model_proto, pieces, source)

    @classmethod
    def of(cls, vocabulary, source: str = "the SentencePiece model") -> "SentencePieceVocabulary":
        """vocabulary as it is when already checked, else read from its proto bytes."""
        if isinstance(vocabulary, cls):
            return vocabulary
        return cls.from_proto(vocabulary, source)

    @classmethod
    def from_file(cls, path: str) -> "SentencePieceVocabulary":
        return cls.from_proto(read_model_proto(path), source=path)

    @property
    def size(self) -> int:
        return len(self.pieces)

    def check_size(self, vocab_size: int):
        """Raises ValueError unless the vocabulary has exactly vocab_size pieces. A
        smaller one tokenizes without error into ids the model learned for other pieces
        (or never trained); a larger one yields ids past the embedding table."""
        if self.size != vocab_size:
            raise ValueError(
                f"{self.source} has {self.size} pieces but the model's vocab_size is "
                f"{vocab_size}: it is not the vocabulary the model was trained with (use "
                "the run's own spm.model; --allow_vocab_mismatch exports anyway)"
            )


def train_sentencepiece(
    sentences: Iterable[str],
    vocab_size: int,
    lower_case: bool = True,
    max_sentences: int = 10_000_000,
    seed_sentencepiece_size: int = 1_000_000,
    num_threads: int = 2,
) -> bytes:
    """Trains ALBERT's unigram SentencePiece model; returns the model proto bytes.

    Sentences are normalised with normalize_text first; blank ones are dropped.
    hard_vocab_limit=False lets a small corpus yield fewer pieces than asked for.
    """
    def normalised():
        for sentence in sentences:
            sentence = normalize_text(sentence, lower_case)
            if sentence:
                yield sentence

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=normalised(),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        eos_id=-1,
        pad_piece=SPECIAL_PIECES[PAD_ID],
        unk_piece=SPECIAL_PIECES[UNK_ID],
        control_symbols=list(SPECIAL_PIECES[2:]),
        normalization_rule_name="nmt_nfkc",
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=num_threads,
        minloglevel=2,
    )
    proto = model.getvalue()
    check_special_pieces(proto)
    return proto


def write_sentencepiece_model(model_proto: bytes, model_prefix: str) -> tuple[str, str]:
    """Writes PREFIX.model and PREFIX.vocab (piece TAB score), each atomically."""
    processor = check_special_pieces(model_proto)
    vocab = "".join(
        f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
        for i in range(processor.get_piece_size())
    )
    model_path, vocab_path = model_prefix + ".model", model_prefix + ".vocab"
    os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
    atomic_file.write_bytes(model_path, model_proto)
    atomic_file.write_text(vocab_path, vocab)
    return model_path, vocab_path


def read_model_proto(path: str) -> bytes:
    """Reads a .model file (any file system tf.io.gfile knows), with an error that
    names it when absent."""
    import tensorflow as tf  # only for tf.io.gfile: the rest of the module needs none

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"SentencePiece model not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()
