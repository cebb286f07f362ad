"""WordPiece in the graph: the rule of albert_keras.wordpiece (BERT's basic
tokenization, then greedy longest-match WordPiece) in TensorFlow and tensorflow-text ops,
for tf.data and exported SavedModels.

Words are cut with one regex split (whitespace separates; CJK ideographs and punctuation
stand alone); each word is normalised (deleted characters, NFD, marks dropped,
lowercase) and tensorflow-text's FastWordpieceTokenizer, given the words as they are
(no_pretokenization), finds its pieces. The character classes are generated from the
Python predicates of albert_keras.wordpiece, so the two sides agree character for
character. tensorflow-text's own BERT tokenizers are not used: they fold full-width
punctuation and case (NFKC_Casefold), where BERT's tokenizer keeps them.
"""

from __future__ import annotations

import functools
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

from albert_keras import wordpiece
from albert_keras.tokenizer import (code_point_offsets, normalized_bytes, pack_segments,
                                    raw_character_spans, regex_class, without_nul)


@functools.lru_cache(maxsize=None)
def _patterns(lower_case: bool) -> dict[str, str]:
    separator = regex_class(wordpiece.is_separator)
    alone = regex_class(lambda c: wordpiece.stands_alone(c, lower_case))
    return {
        "deleted": regex_class(wordpiece.is_deleted),
        # After NFD: NFD makes no deleted character, and a deleted one (a starter)
        # never changes how marks reorder, so one pass removes both.
        "deleted_or_mark": regex_class(
            lambda c: wordpiece.is_deleted(c) or unicodedata.category(c) == "Mn"),
        "split": f"{separator}+|{alone}",
        "alone": alone,
        # On normalised text (tokenize): a separator run, or a character that is CJK or
        # punctuation itself, -> " \\1 ", so that words lie between spaces.
        "spaced": f"{separator}+|({regex_class(_alone_when_normalized)})",
    }


def _alone_when_normalized(char: str) -> bool:
    return wordpiece.is_cjk(char) or wordpiece.is_punctuation(char)


class AlbertWordPieceTokenizer(tf.Module):
    """In-graph WordPiece tokenizer with the interface of albert_keras.tokenizer's
    AlbertTokenizer: tokenize, tokenize_with_offsets (code points), normalize, and
    packing with the vocabulary's own special ids. Saves with tf.saved_model and runs
    where only tensorflow and tensorflow_text are imported."""

    def __init__(self, vocabulary: wordpiece.WordPieceVocabulary, lower_case: bool = True,
                 name: str = "albert_wordpiece_tokenizer"):
        super().__init__(name=name)
        self.vocab_size = vocabulary.size
        self.special = vocabulary.special
        self.lower_case = lower_case
        unknown = vocabulary.pieces[vocabulary.special.unk]
        self._unknown = unknown
        self.wordpiece = tf_text.FastWordpieceTokenizer(
            list(vocabulary.pieces), suffix_indicator=wordpiece.WORDPIECE_CONTINUATION,
            # Words longer than MAX_WORD_CHARS characters are made [UNK] here; the
            # byte limit must never cut in first (a character is up to 4 bytes).
            max_bytes_per_word=4 * wordpiece.MAX_WORD_CHARS + 4,
            token_out_type=tf.int32, unknown_token=unknown, no_pretokenization=True,
            support_detokenization=False)
        _patterns(lower_case)  # generate the classes now, not at the first trace

    def normalize(self, text) -> tf.Tensor:
        """Deleted characters removed; with lower_case NFD, marks dropped, lowercase."""
        patterns = _patterns(self.lower_case)
        text = tf.convert_to_tensor(text, tf.string)
        if not self.lower_case:
            return tf.strings.regex_replace(text, patterns["deleted"], "")
        text = tf_text.normalize_utf8(without_nul(text), "NFD")
        text = tf.strings.regex_replace(text, patterns["deleted_or_mark"], "")
        return tf.strings.lower(text, encoding="utf-8")

    def _words(self, text):
        """Raw words [batch, (words)] with their byte offsets."""
        if text.shape.rank != 1:
            raise ValueError(f"tokenize_with_offsets takes a batch of strings [batch], got "
                             f"shape {text.shape}")
        patterns = _patterns(self.lower_case)
        # NUL and U+0001 are both deleted control characters of one byte.
        return tf_text.regex_split_with_offsets(without_nul(text), patterns["split"],
                                                patterns["alone"])

    def _wordpiece_input(self, normalized: tf.Tensor) -> tf.Tensor:
        """A word of more than MAX_WORD_CHARS characters is one [UNK] (BERT's rule)."""
        too_long = (tf.strings.length(normalized, unit="UTF8_CHAR")
                    > wordpiece.MAX_WORD_CHARS)
        return tf.where(too_long, tf.constant(self._unknown), normalized), too_long

    def tokenize(self, text) -> tf.RaggedTensor:
        """Strings [batch] -> int32 ids RaggedTensor [batch, (pieces)].

        The ids of tokenize_with_offsets, faster: the whole text is normalised first
        (normalisation works character by character, and no character that stands alone
        normalises into one that does not, or the reverse), then each separator run and
        each character that stands alone is spaced apart and the words lie between
        spaces (tests check both paths against the Python one)."""
        text = tf.convert_to_tensor(text, tf.string)
        if text.shape.rank != 1:
            raise ValueError(f"tokenize takes a batch of strings [batch], got shape {text.shape}")
        spaced = tf.strings.regex_replace(self.normalize(text),
                                          _patterns(self.lower_case)["spaced"], " \\1 ")
        words = tf.strings.split(spaced)  # on ASCII whitespace: all that is left of it
        inputs, _ = self._wordpiece_input(words.flat_values)
        return words.with_flat_values(self.wordpiece.tokenize(inputs)).merge_dims(1, 2)

    def tokenize_with_offsets(self, text):
        """Strings [batch] -> (ids, starts, ends), int32 RaggedTensors [batch, (pieces)]:
        the pieces of `tokenize` and each one's span in the raw text, in code points."""
        text = tf.convert_to_tensor(text, tf.string)
        words, word_begin, _ = self._words(text)
        normalized = self.normalize(words.flat_values)
        inputs, too_long = self._wordpiece_input(normalized)
        pieces, begin, end = self.wordpiece.tokenize_with_offsets(inputs)
        piece_word = tf.cast(pieces.value_rowids(), tf.int32)
        # A too-long word's [UNK] spans the whole word.
        long_piece = tf.gather(too_long, piece_word)
        begin = tf.where(long_piece, 0, tf.cast(begin.flat_values, tf.int32))
        end = tf.where(long_piece,
                       tf.gather(tf.strings.length(normalized, unit="BYTE"), piece_word),
                       tf.cast(end.flat_values, tf.int32))
        chars = tf.strings.unicode_split(words.flat_values, "UTF-8")  # [words, (chars)]
        starts, ends = raw_character_spans(
            chars, normalized_bytes(self.normalize, chars.flat_values),
            code_point_offsets(text, word_begin).flat_values, piece_word, begin, end)

        def per_text(flat):
            return words.with_flat_values(pieces.with_flat_values(flat)).merge_dims(1, 2)

        return per_text(pieces.flat_values), per_text(starts), per_text(ends)

    def __call__(self, text_a, text_b=None, *, seq_length: int) -> dict[str, tf.Tensor]:
        """Strings [batch] (and [batch]) -> packed int32 features [batch, seq_length]."""
        tokens_b = None if text_b is None else self.tokenize(text_b)
        return pack_segments(self.tokenize(text_a), tokens_b, seq_length=seq_length,
                             special=self.special)
