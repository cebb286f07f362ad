"""Raw text -> words with character offsets: the rule of BERT's basic tokenizer.

A word is a maximal run of characters that are neither separators nor punctuation, or
a single punctuation character, or a single CJK ideograph. Separators are whitespace
(str.isspace) and control and format characters (Unicode Cc, Cf), which BERT's
basic tokenizer also drops. Punctuation is what BERT's `_is_punctuation` says: ASCII
non-alphanumeric symbols (33-47, 58-64, 91-96, 123-126) and every Unicode P* character.
CJK ideographs are BERT's `_is_chinese_char` blocks. Offsets are code points into the
text, so that text[start:end] == word in Python.

`split_words` is the rule in Python (the spec); `split_words_graph` is the same rule
in TensorFlow and tensorflow-text ops, for the exported `tag` signature; the tests
check them against each other.
"""

from __future__ import annotations

import functools
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

from albert_keras.tokenizer import code_point_offsets, regex_class, without_nul
from albert_keras.wordpiece import is_cjk, is_punctuation  # BERT's character classes


def is_separator(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf")


def split_words(text: str) -> list:
    """[(word, start, end)] with code-point offsets (module docstring)."""
    words, start = [], None
    for index, char in enumerate(text):
        single = is_punctuation(char) or is_cjk(char)
        if is_separator(char) or single:
            if start is not None:
                words.append((text[start:index], start, index))
                start = None
            if single and not is_separator(char):
                words.append((char, index, index + 1))
        elif start is None:
            start = index
    if start is not None:
        words.append((text[start:], start, len(text)))
    return words


@functools.lru_cache(maxsize=None)
def _patterns() -> tuple:
    separator = regex_class(is_separator)
    single = regex_class(lambda c: (is_punctuation(c) or is_cjk(c)) and not is_separator(c))
    return f"{separator}+|{single}", single


def split_words_graph(text: tf.Tensor):
    """Strings [batch] (valid UTF-8) -> (words [batch, (words)], starts, ends int32
    [batch, (words)]): `split_words` in the graph."""
    delimiters, kept = _patterns()
    # A NUL is a separator, as U+0001 is (without_nul): the words are the same.
    words, begin, end = tf_text.regex_split_with_offsets(without_nul(text), delimiters, kept)
    return words, code_point_offsets(text, begin), code_point_offsets(text, end)
