"""ALBERT's vocabularies, offline: training, writing, reading and checking a
SentencePiece model proto, and reading either kind (read_vocabulary: a SentencePiece
.model, or a BERT WordPiece vocab.txt, albert_keras.wordpiece). The in-graph tokenizers
that use them are albert_keras.tokenizer.tokenizer_for.

The model is a unigram SentencePiece model trained on normalised text
(text_normalization.normalize_text) with the special pieces of albert_keras.special_tokens
at ids 0-4 and SentencePiece's nmt_nfkc rule, as the reference vocabularies.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import random
from typing import Iterable

import sentencepiece as spm

from albert_keras import atomic_file
from albert_keras.special_tokens import PAD_ID, SENTENCEPIECE_IDS, SPECIAL_PIECES, UNK_ID
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
    kind = "sentencepiece"
    special = SENTENCEPIECE_IDS

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

    @property
    def file_bytes(self) -> bytes:
        return self.model_proto

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


def sample_sentences(sentences: Iterable[str], count: int, seed: int) -> list[str]:
    """At most `count` of the sentences, the same ones for the same seed (reservoir
    sampling, in corpus order)."""
    rng = random.Random(seed)
    kept: list[tuple[int, str]] = []
    for index, sentence in enumerate(sentences):
        if len(kept) < count:
            kept.append((index, sentence))
        else:
            slot = rng.randrange(index + 1)
            if slot < count:
                kept[slot] = (index, sentence)
    return [sentence for _, sentence in sorted(kept)]


def normalized_sentences(sentences: Iterable[str], lower_case: bool = True):
    """The sentences as the vocabulary is trained on them (normalize_text), blank ones
    dropped."""
    for sentence in sentences:
        sentence = normalize_text(sentence, lower_case)
        if sentence:
            yield sentence


def train_sentencepiece(sentences: Iterable[str], vocab_size: int, lower_case: bool = True,
                        **options) -> bytes:
    """Trains ALBERT's unigram SentencePiece model on raw sentences (normalised first);
    returns the model proto bytes. options: those of train_normalized."""
    return train_normalized(normalized_sentences(sentences, lower_case), vocab_size, **options)


def train_normalized(
    sentences: Iterable[str],
    vocab_size: int,
    max_sentences: int = 10_000_000,
    seed_sentencepiece_size: int = 1_000_000,
    num_threads: int = 2,
    character_coverage: float = 0.9995,
    byte_fallback: bool = False,
    max_sentence_length: int = 4192,
    seed: int = 0,
    split_cjk: bool = False,
) -> bytes:
    """Trains ALBERT's unigram SentencePiece model on normalized_sentences; returns the
    model proto bytes.

    More than max_sentences sentences are sampled down, the same ones for the same seed. SentencePiece
    skips sentences longer than max_sentence_length bytes (callers check, as
    training.build_vocab does). character_coverage: the share of characters the pieces
    must cover (SentencePiece's default 0.9995; 1.0 keeps every character, which a
    Chinese corpus with rare characters may want); byte_fallback: characters outside the
    vocabulary become their UTF-8 bytes (<0x..> pieces) instead of <unk>.
    split_cjk: the CJK mode, BERT's rule for Chinese: every CJK ideograph is a piece of
    its own, never part of a longer one (cjk_symbols). The mode lives in the model proto
    (the ideographs are SentencePiece user-defined symbols), so every tokenizer of the
    model, Python or graph, applies it.
    hard_vocab_limit=False lets a small corpus yield fewer pieces than asked for.
    """
    model = io.BytesIO()
    sampled = sample_sentences(sentences, max_sentences, seed)
    symbols = cjk_symbols(sampled, character_coverage, vocab_size) if split_cjk else []
    try:
        _train(model, sampled, vocab_size, seed_sentencepiece_size, num_threads,
               character_coverage, byte_fallback, max_sentence_length, max_sentences, symbols)
    except RuntimeError as error:  # SentencePiece's own checks, e.g. a vocabulary too small
        raise ValueError(f"SentencePiece cannot train this vocabulary: "
                         f"{str(error).split('] ')[-1]}") from None
    proto = model.getvalue()
    check_special_pieces(proto)
    return proto


def cjk_symbols(sentences: list[str], coverage: float, vocab_size: int) -> list[str]:
    """The CJK ideographs of the sentences, most frequent first, as many as cover
    `coverage` of the ideographs' occurrences and at most half the vocabulary (the rest
    are <unk>, or bytes with byte_fallback, one piece each: still never part of a longer
    piece)."""
    from albert_keras.wordpiece import is_cjk

    counts = collections.Counter(c for sentence in sentences for c in sentence if is_cjk(c))
    total, covered, kept = sum(counts.values()), 0, []
    for char, count in counts.most_common(vocab_size // 2):
        if covered >= coverage * total:
            break
        kept.append(char)
        covered += count
    return kept


def _train(model, sentences, vocab_size, seed_sentencepiece_size, num_threads,
           character_coverage, byte_fallback, max_sentence_length, max_sentences, symbols):
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
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
        user_defined_symbols=symbols,
        normalization_rule_name="nmt_nfkc",
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=num_threads,
        character_coverage=character_coverage,
        byte_fallback=byte_fallback,
        max_sentence_length=max_sentence_length,
        minloglevel=2,
    )


def unknown_rate(model_proto: bytes, sentences: list[str], lower_case: bool = True) -> dict:
    """How much of `sentences` the model maps to <unk>: {"pieces", "unknown_pieces",
    "characters", "unknown_characters"} (an <unk> piece covers the characters it spans)."""
    processor = check_special_pieces(model_proto)
    counts = dict(pieces=0, unknown_pieces=0, characters=0, unknown_characters=0)
    for sentence in sentences:
        text = normalize_text(sentence, lower_case)
        pieces = processor.encode(text, out_type="proto").pieces
        counts["pieces"] += len(pieces)
        counts["characters"] += len(text)
        for piece in pieces:
            if piece.id == UNK_ID:
                counts["unknown_pieces"] += 1
                counts["unknown_characters"] += len(piece.surface)
    return counts


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


def read_model_proto(path: str, what: str = "SentencePiece model") -> bytes:
    """Reads a .model file (any file system tf.io.gfile knows), with an error that
    names it when absent."""
    import tensorflow as tf  # only for tf.io.gfile: the rest of the module needs none

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def is_wordpiece_file(data: bytes) -> bool:
    """A WordPiece vocab.txt is UTF-8 text; a SentencePiece model proto is binary (its
    scores are floats, so it holds NUL and other control bytes)."""
    head = data[:65536]
    if any(byte < 32 and byte not in (9, 10, 13) for byte in head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a character cut at the head's end
    return True


def vocabulary_from_bytes(data: bytes, source: str = "the vocabulary"):
    """A SentencePieceVocabulary or a WordPieceVocabulary, by the file's content."""
    if is_wordpiece_file(data):
        from albert_keras.wordpiece import WordPieceVocabulary

        return WordPieceVocabulary.from_bytes(data, source)
    return SentencePieceVocabulary.from_proto(data, source)


def read_vocabulary(path: str):
    """Reads a SentencePiece .model or a WordPiece vocab.txt (any file system
    tf.io.gfile knows), named in errors."""
    return vocabulary_from_bytes(read_model_proto(path, "vocabulary"), source=path)


def as_vocabulary(vocabulary, source: str = "the vocabulary"):
    """A checked vocabulary as it is, or one read from file bytes."""
    if hasattr(vocabulary, "special") and hasattr(vocabulary, "pieces"):
        return vocabulary
    return vocabulary_from_bytes(vocabulary, source)


def python_encoder(vocabulary, lower_case: bool = True):
    """texts -> lists of ids, in Python, for the data tools: SentencePiece on the
    reference normalisation (normalize_text), or WordPiece with its own rule."""
    if vocabulary.kind == "wordpiece":
        from albert_keras.wordpiece import WordPieceTokenizer

        tokenizer = WordPieceTokenizer(vocabulary, lower_case)
        return lambda texts: [tokenizer.tokenize(text) for text in texts]
    processor = spm.SentencePieceProcessor(model_proto=vocabulary.model_proto)
    return lambda texts: processor.encode([normalize_text(text, lower_case) for text in texts])
