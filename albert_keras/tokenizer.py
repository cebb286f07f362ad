"""ALBERT's tokenization in the graph: normalisation, SentencePiece, packing.

The vocabulary itself (training, writing, reading and checking the SentencePiece model)
is albert_keras.vocabulary; the special tokens' ids are albert_keras.special_tokens.

One normalisation, written twice on purpose: `normalize_text` in Python
(albert_keras.text_normalization, used to build the vocabulary and the pretraining
instances) and `normalize_text_graph` in TensorFlow
ops (used inside tf.data and exported SavedModels). Both follow the reference
`preprocess_text`: collapse whitespace, turn `` and '' into ", NFKD, drop combining
marks, lowercase unless cased. The tests check that both give the same ids.

The character classes that the graph side needs ("whitespace" as Python's str.split
sees it, "combining mark" as unicodedata.combining sees it) are generated from Python's
unicodedata, so the two sides agree character for character.

SentencePiece then applies the model's own rule (nmt_nfkc, the reference default) in
both the Python processor and tensorflow_text, from the same model proto.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.sentencepiece_tokenizer import (
    gen_sentencepiece_tokenizer as _sentencepiece_ops,
)

from albert_keras.special_tokens import SENTENCEPIECE_IDS, SpecialIds
from albert_keras.vocabulary import SentencePieceVocabulary


# ---------------------------------------------------------------- normalisation
def regex_class(predicate) -> str:
    """An RE2 character class of all code points for which predicate(char) is true."""
    ranges, start, previous = [], None, None
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:  # surrogates never occur in valid UTF-8
            continue
        if predicate(chr(code)):
            if start is None:
                start = code
            elif code != previous + 1:
                ranges.append((start, previous))
                start = code
            previous = code
    if start is not None:
        ranges.append((start, previous))
    parts = [
        f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges
    ]
    return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=None)
def _graph_patterns() -> tuple[str, str]:
    whitespace = regex_class(str.isspace)
    combining = regex_class(unicodedata.combining) + "+"
    return whitespace, combining


NUL = "\x00"


def normalize_text_graph(text: tf.Tensor, lower_case: bool = True) -> tf.Tensor:
    """`normalize_text` in TensorFlow ops, for a string tensor of any shape."""
    whitespace, combining = _graph_patterns()
    text = tf.strings.regex_replace(text, whitespace + "+", " ")
    text = tf.strings.regex_replace(text, "^ | $", "")
    text = tf.strings.regex_replace(text, "``|''", '"')
    text = tf_text.normalize_utf8(text, "NFKD")
    text = tf.strings.regex_replace(text, combining, "")
    if lower_case:
        text = _lower_keeping_nul(text)
    return text


def _lower_keeping_nul(text: tf.Tensor) -> tf.Tensor:
    """tf.strings.lower(text, "utf-8") for strings that may hold NUL: that op ends a
    string at its first NUL, so the parts between NULs are lowercased apart and joined
    again, each but the last with its NUL (a separator attribute cannot hold one)."""
    def around_nuls():
        flat = tf.reshape(text, [-1])
        parts = tf.strings.split(flat, NUL)  # [strings, (parts)]
        lowered = tf.strings.lower(parts.flat_values, encoding="utf-8")
        position = tf.ragged.range(parts.row_lengths()).flat_values
        last = tf.gather(parts.row_lengths(), parts.value_rowids()) - 1
        nul = tf.where(position < last, tf.constant(NUL), tf.constant(""))
        joined = parts.with_flat_values(tf.strings.join([lowered, nul]))
        return tf.reshape(tf.strings.reduce_join(joined, axis=1), tf.shape(text))

    # Only when a string holds a NUL: on every batch, the split and join (with the
    # chunks' substr in tokenize_with_offsets) made tokenize_with_offsets 1.2x slower
    # (16 -> 19.5 ms on 256 texts of 360 characters).
    return tf.cond(has_nul(text), around_nuls,
                   lambda: tf.strings.lower(text, encoding="utf-8"))


def has_nul(text: tf.Tensor) -> tf.Tensor:
    """bool scalar: whether any of the strings holds a NUL (TensorFlow's own regex ops
    read the whole string)."""
    return tf.logical_not(tf.reduce_all(tf.strings.regex_full_match(text, "[^\\x00]*")))


def without_nul(text: tf.Tensor) -> tf.Tensor:
    """`text` with each NUL written as U+0001, for the tensorflow-text regex ops, which
    end a string at its first NUL. Both are one byte and control characters (neither
    whitespace nor a word character), so every split point and byte offset is the
    same; take the parts' text from the original by those offsets."""
    return tf.strings.regex_replace(text, r"\x00", "\x01")


def code_point_offsets(text: tf.Tensor, byte_offsets: tf.RaggedTensor) -> tf.RaggedTensor:
    """Byte offsets [batch, (n)] into the strings text [batch] (valid UTF-8) -> int32
    code-point offsets: how many characters start before each."""
    _, char_starts = tf.strings.unicode_decode_with_offsets(text, "UTF-8")
    dense_starts = tf.cast(char_starts, tf.int64).to_tensor(tf.int64.max)  # pads sort last
    dense = tf.cast(byte_offsets, tf.int64).to_tensor(0)
    chars = tf.searchsorted(dense_starts, dense, side="left", out_type=tf.int32)
    return tf.RaggedTensor.from_tensor(chars, lengths=byte_offsets.row_lengths())


# ---------------------------------------------------------------- packing
def _truncated_lengths(len_a, len_b, budget):
    """Lengths after the reference _truncate_seq_pair: pop from the longer (b on ties)."""
    shorter = tf.minimum(len_a, len_b)
    a_is_shorter = len_a <= len_b
    if_one_cut = budget - shorter  # only the longer is cut
    balanced_a = (budget + 1) // 2  # both cut: a gets the odd token
    balanced_b = budget // 2
    fits = len_a + len_b <= budget
    one_cut = 2 * shorter <= budget
    new_a = tf.where(fits | (one_cut & a_is_shorter), len_a,
                     tf.where(one_cut, if_one_cut, balanced_a))
    new_b = tf.where(fits | (one_cut & ~a_is_shorter), len_b,
                     tf.where(one_cut, if_one_cut, balanced_b))
    return new_a, new_b


def pack_segments(
    segment_a: tf.RaggedTensor,
    segment_b: tf.RaggedTensor | None = None,
    *,
    seq_length: int,
    special: SpecialIds = SENTENCEPIECE_IDS,
) -> dict[str, tf.Tensor]:
    """[CLS] A [SEP] (B [SEP]) as int32 [batch, seq_length] input_ids, segment_ids, input_mask.

    Token ids come as RaggedTensors [batch, (tokens)]. A pair is truncated the reference
    way (the longer segment loses its last token first) so that the whole fits.
    special: the vocabulary's special ids (tokenizer.special). Works for a batch of 0 rows.
    """
    if seq_length < 3 + (segment_b is not None):
        raise ValueError(f"seq_length={seq_length} leaves no room for tokens")
    # Dense arithmetic on positions rather than ragged concatenation: a handful of ops,
    # so tracing and running stay cheap inside tf.data and exported signatures.
    shape = [None, seq_length]
    segment_a = tf.cast(segment_a, tf.int32)
    len_a = tf.cast(segment_a.row_lengths(), tf.int32)
    dense_a = segment_a.to_tensor(0, shape=shape)
    if segment_b is None:
        new_a = tf.minimum(len_a, seq_length - 2)
        new_b = tf.zeros_like(new_a)
        dense_b = tf.zeros_like(dense_a)
    else:
        segment_b = tf.cast(segment_b, tf.int32)
        len_b = tf.cast(segment_b.row_lengths(), tf.int32)
        new_a, new_b = _truncated_lengths(len_a, len_b, seq_length - 3)
        dense_b = segment_b.to_tensor(0, shape=shape)
    position = tf.range(seq_length)[None, :]
    end_a = new_a[:, None] + 1  # the first [SEP]
    end_b = end_a + new_b[:, None] + 1  # the second [SEP], for a pair
    from_a = tf.concat([tf.zeros_like(dense_a[:, :1]), dense_a[:, :-1]], axis=1)
    from_b = tf.gather(dense_b, tf.clip_by_value(position - end_a - 1, 0, seq_length - 1),
                       batch_dims=1)
    in_a = (position >= 1) & (position < end_a)
    in_b = (position > end_a) & (position < end_b)
    is_sep = (position == end_a) | ((position == end_b) & (segment_b is not None))
    input_ids = tf.where(in_a, from_a, tf.where(in_b, from_b, 0))
    input_ids = tf.where(is_sep, special.sep, tf.where(position == 0, special.cls, input_ids))
    last = end_b if segment_b is not None else end_a
    return {
        "input_ids": input_ids,
        "segment_ids": tf.cast((position > end_a) & (position <= last), tf.int32),
        "input_mask": tf.cast(position <= last, tf.int32),
    }


# ---------------------------------------------------------------- tokenizer
class _SentencepieceResource(tf.saved_model.experimental.TrackableResource):
    """The SentencePiece model as a TensorFlow resource named after its content.

    tensorflow_text.SentencepieceTokenizer's resource is private to its op kernel, and
    eager kernels are dropped whenever eager caches are cleared (tf.random.set_seed and
    keras.utils.set_random_seed do that); every later call then fails with NotFoundError.
    A shared name (one per model content) keeps the resource alive and lets equal models
    share it. Saved with the object graph, so a SavedModel re-creates it on load.
    """

    def __init__(self, model_proto: bytes):
        super().__init__()
        self._model_proto = model_proto
        self._shared_name = "albert_sentencepiece_" + hashlib.sha256(model_proto).hexdigest()[:24]
        _ = self.resource_handle  # creates the resource now

    def _create_resource(self):
        return _sentencepiece_ops.sentencepiece_op(
            model=self._model_proto, shared_name=self._shared_name
        )


def normalized_bytes(normalize, chars: tf.Tensor) -> tf.Tensor:
    """int32 [n]: the UTF-8 length of each single character after `normalize`. A
    printable ASCII character normalises to one byte (NFKD keeps it, lowercase keeps its
    length, and whitespace never reaches here), so only the others run the normalisation."""
    lengths = tf.strings.length(chars, unit="BYTE")
    other = tf.where((lengths > 1) | tf.strings.regex_full_match(chars, "[\\x00-\\x1f\\x7f]"))
    normalized = normalize(tf.gather_nd(chars, other))
    return tf.tensor_scatter_nd_update(lengths, other,
                                       tf.strings.length(normalized, unit="BYTE"))


def raw_character_spans(chars: tf.RaggedTensor, char_bytes: tf.Tensor,
                        chunk_starts: tf.Tensor, piece_chunk: tf.Tensor,
                        begin: tf.Tensor, end: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Pieces' byte spans in their normalised chunk -> code-point spans in the raw text.

    chars: each chunk's raw characters [chunks, (chars)]; char_bytes: their normalised
    UTF-8 lengths [all chars] (normalisation works one character at a time, so a
    chunk's normalised bytes are its characters' in order); chunk_starts: the code point
    where each chunk starts in its text; piece_chunk, begin, end: each piece's chunk and
    normalised byte span. A piece's span takes in the characters that normalise to
    nothing after it; a piece of no character has start == end, at the next character.
    """
    # Characters numbered across all chunks with one byte between chunks, so that no
    # piece's span reaches into the next chunk.
    rank_in_chunk = tf.cast(tf.ragged.range(chars.row_lengths()).flat_values, tf.int32)
    first_in_chunk = tf.cast(tf.equal(rank_in_chunk, 0), tf.int32)
    char_ends = tf.cumsum(char_bytes + first_in_chunk)  # [all chars], non-decreasing
    chunk_bytes = tf.reduce_sum(chars.with_flat_values(char_bytes), axis=1)
    chunk_base = tf.cumsum(chunk_bytes + 1, exclusive=True) + 1
    base = tf.gather(chunk_base, piece_chunk)
    limit = tf.gather(chunk_bytes, piece_chunk)
    first_char = tf.searchsorted(char_ends, base + tf.minimum(begin, limit),
                                 side="right", out_type=tf.int32)
    end_char = tf.searchsorted(char_ends, base + tf.minimum(end, limit),
                               side="right", out_type=tf.int32)
    char_position = (tf.gather(chunk_starts, tf.cast(chars.value_rowids(), tf.int32))
                     + rank_in_chunk)
    chunk_last = tf.gather(tf.cast(chars.row_splits[1:], tf.int32) - 1, piece_chunk)
    starts = tf.gather(char_position, tf.minimum(first_char, chunk_last))
    ends = tf.where(end_char > first_char,
                    tf.gather(char_position, tf.maximum(end_char - 1, 0)) + 1, starts)
    return starts, ends


class AlbertTokenizer(tf.Module):
    """In-graph ALBERT tokenizer: normalise, SentencePiece (tensorflow_text's op), pack.

    A tf.Module that owns the SentencePiece resource (built from the model proto bytes),
    so a tf.Module or Keras model holding it exports with tf.saved_model.save and reloads
    where only tensorflow and tensorflow_text are imported.
    """

    def __init__(self, vocabulary: SentencePieceVocabulary | bytes, lower_case: bool = True,
                 name: str = "albert_tokenizer"):
        """vocabulary: a checked SentencePieceVocabulary, or model proto bytes to check."""
        super().__init__(name=name)
        vocabulary = SentencePieceVocabulary.of(vocabulary)
        self.vocab_size = vocabulary.size
        self.special = vocabulary.special
        self.lower_case = lower_case
        self.sentencepiece = _SentencepieceResource(vocabulary.model_proto)

    @classmethod
    def from_file(cls, path: str, lower_case: bool = True) -> "AlbertTokenizer":
        return cls(SentencePieceVocabulary.from_file(path), lower_case=lower_case)

    def normalize(self, text) -> tf.Tensor:
        return normalize_text_graph(tf.convert_to_tensor(text, tf.string), self.lower_case)

    def tokenize(self, text) -> tf.RaggedTensor:
        """Strings [batch] -> int32 ids RaggedTensor [batch, (tokens)]."""
        text = self.normalize(text)
        if text.shape.rank != 1:
            raise ValueError(f"tokenize takes a batch of strings [batch], got shape {text.shape}")
        values, row_splits = _sentencepiece_ops.sentencepiece_tokenize_op(
            self.sentencepiece.resource_handle, text,
            nbest_size=0, alpha=1.0, add_bos=False, add_eos=False, reverse=False,
            out_type=tf.int32,
        )
        return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)

    def tokenize_with_offsets(self, text):
        """Strings [batch] -> (ids, starts, ends), int32 RaggedTensors [batch, (pieces)]:
        the pieces of `tokenize` (the same ids) and each piece's span in the raw text, in
        code points, so that text[start:end] is what the piece was made from.

        SentencePiece never lets a piece cross whitespace, so the text is cut at
        whitespace into chunks and each chunk is tokenized alone: the same pieces as the
        whole text. Its offsets are bytes of the normalised chunk; they map back to raw
        characters because normalisation works character by character (NFKD, dropped
        marks, lowercase), and `` or '' is first written as '"' plus a mark that
        normalisation drops, so that each raw character has its own normalised bytes. A
        piece's span takes in the characters that normalise to nothing after it. A piece
        made of no character (SentencePiece's lone "▁" before a character it cannot
        join to it) has start == end.
        """
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank != 1:
            raise ValueError(f"tokenize_with_offsets takes a batch of strings [batch], got "
                             f"shape {text.shape}")
        whitespace, _ = _graph_patterns()
        chunks, chunk_begin, chunk_end = tf_text.regex_split_with_offsets(
            without_nul(text), whitespace + "+")
        chunk_starts = code_point_offsets(text, chunk_begin).flat_values  # [chunks]
        chunk_text = tf.cond(  # the chunks as they are in the text, NULs kept
            has_nul(text),
            lambda: tf.strings.substr(tf.gather(text, chunks.value_rowids()),
                                      chunk_begin.flat_values,
                                      chunk_end.flat_values - chunk_begin.flat_values),
            lambda: chunks.flat_values)
        raw = tf.strings.regex_replace(chunk_text, "``|''", '"\u0301')
        normalized = self.normalize(raw)
        values, splits, begin, end = _sentencepiece_ops.sentencepiece_tokenize_with_offsets_op(
            self.sentencepiece.resource_handle, normalized,
            nbest_size=0, alpha=1.0, add_bos=False, add_eos=False, reverse=False,
            out_type=tf.int32)
        pieces_per_chunk = tf.RaggedTensor.from_row_splits(values, splits, validate=False)
        begin, end = tf.cast(begin, tf.int32), tf.cast(end, tf.int32)

        chars = tf.strings.unicode_split(raw, "UTF-8")  # [chunks, (chars)]
        starts, ends = raw_character_spans(
            chars, normalized_bytes(self.normalize, chars.flat_values), chunk_starts,
            tf.cast(pieces_per_chunk.value_rowids(), tf.int32), begin, end)

        def per_text(flat):
            return tf.RaggedTensor.from_row_splits(
                pieces_per_chunk.with_flat_values(flat), chunks.row_splits,
                validate=False).merge_dims(1, 2)

        return per_text(values), per_text(starts), per_text(ends)

    def __call__(self, text_a, text_b=None, *, seq_length: int) -> dict[str, tf.Tensor]:
        """Strings [batch] (and [batch]) -> packed int32 features [batch, seq_length]."""
        tokens_b = None if text_b is None else self.tokenize(text_b)
        return pack_segments(self.tokenize(text_a), tokens_b, seq_length=seq_length,
                             special=self.special)


def tokenizer_for(vocabulary, lower_case: bool = True):
    """The in-graph tokenizer of a vocabulary: AlbertTokenizer for SentencePiece,
    AlbertWordPieceTokenizer for WordPiece. vocabulary: a checked vocabulary
    (albert_keras.vocabulary.read_vocabulary) or a vocabulary file's bytes."""
    from albert_keras.vocabulary import as_vocabulary

    vocabulary = as_vocabulary(vocabulary)
    if vocabulary.kind == "wordpiece":
        from albert_keras.wordpiece_tokenizer import AlbertWordPieceTokenizer

        return AlbertWordPieceTokenizer(vocabulary, lower_case=lower_case)
    return AlbertTokenizer(vocabulary, lower_case=lower_case)
