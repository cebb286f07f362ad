"""BERT WordPiece vocabularies (vocab.txt, as the Chinese ALBERTs ship them) and
WordPiece tokenization in plain Python, with code-point offsets: what the data tools use.
Its graph twin is albert_keras.wordpiece_tokenizer, tested to give the same pieces and
spans; both are tested against transformers' BertTokenizer.

The rule (BERT's basic tokenization, then WordPiece), per raw character:
- NUL, U+FFFD and control characters (Unicode C*, except tab, newline and return) are
  deleted; whitespace separates words;
- a CJK ideograph, and a character whose normalised form is punctuation (Unicode P* or
  ASCII punctuation), is a word of its own;
- with lower_case a character is normalised as NFD, combining marks (Mn) dropped, then
  lowercased; cased models keep it as it is;
- a word of more than 100 normalised characters is [UNK]; otherwise the longest
  vocabulary entry that starts it, then "##" + the longest that continues it, and so
  on; a word that cannot be covered is a single [UNK].

Characters are normalised one at a time, so every piece maps back to the raw characters
it came from (a piece's span takes in the deleted characters after it).
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata

from albert_keras.special_tokens import WORDPIECE_CONTINUATION, SpecialIds

MAX_WORD_CHARS = 100  # BERT's max_input_chars_per_word
SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]",
                  "mask": "[MASK]"}
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


# ---------------------------------------------------------------- characters
def is_deleted(char: str) -> bool:
    """NUL, U+FFFD and control/format/unassigned/private characters but tab, newline
    and carriage return (BERT's _clean_text)."""
    if char in "\t\n\r":
        return False
    return char == "\ufffd" or unicodedata.category(char).startswith("C")


def is_separator(char: str) -> bool:
    """Whitespace that separates words (what is left of str.isspace after deletion)."""
    return char.isspace() and not is_deleted(char)


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def is_punctuation(char: str) -> bool:
    code = ord(char)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(char).startswith("P"))


def normalize_char(char: str, lower_case: bool) -> str:
    """One raw character as WordPiece sees it ("" when it is deleted or is a mark)."""
    if is_deleted(char):
        return ""
    if not lower_case:
        return char
    decomposed = unicodedata.normalize("NFD", char)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def stands_alone(char: str, lower_case: bool) -> bool:
    """A CJK ideograph or punctuation: always a word by itself (a deleted character,
    an unassigned code point in a CJK block say, is never one: it is gone first)."""
    if is_deleted(char):
        return False
    if is_cjk(char):
        return True
    normalized = normalize_char(char, lower_case)
    return bool(normalized) and all(is_punctuation(c) for c in normalized)


# ---------------------------------------------------------------- vocabulary
@dataclasses.dataclass(frozen=True, eq=False)
class WordPieceVocabulary:
    """A vocab.txt read and checked once: its tokens by id, its special ids, and where it
    came from (named in errors)."""

    pieces: tuple
    special: SpecialIds
    source: str = "the WordPiece vocabulary"
    kind = "wordpiece"

    @classmethod
    def from_text(cls, text: str, source: str = "the WordPiece vocabulary"):
        pieces = tuple(line.rstrip("\r") for line in text.split("\n"))
        if pieces and pieces[-1] == "":  # the file's final newline
            pieces = pieces[:-1]
        ids = _first_ids(pieces)
        missing = [token for token in SPECIAL_TOKENS.values() if token not in ids]
        if missing:
            raise ValueError(f"{source} lacks BERT's special tokens {missing}: a WordPiece "
                             "vocabulary needs [PAD] [UNK] [CLS] [SEP] [MASK], one per line")
        special = SpecialIds(**{name: ids[token] for name, token in SPECIAL_TOKENS.items()})
        return cls(pieces, special, source)

    @functools.cached_property
    def ids(self) -> dict:
        """piece -> id (the first line of a piece that repeats)."""
        return _first_ids(self.pieces)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the WordPiece vocabulary"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{source} is not UTF-8 text: {error}") from None
        return cls.from_text(text, source)

    @property
    def size(self) -> int:
        return len(self.pieces)

    @property
    def file_bytes(self) -> bytes:
        """The vocabulary as a vocab.txt (one token per line)."""
        return "".join(piece + "\n" for piece in self.pieces).encode("utf-8")

    def check_size(self, vocab_size: int):
        if self.size != vocab_size:
            raise ValueError(
                f"{self.source} has {self.size} tokens but the model's vocab_size is "
                f"{vocab_size}: it is not the vocabulary the model was trained with")



def _first_ids(pieces) -> dict:
    ids = {}
    for index, piece in enumerate(pieces):
        ids.setdefault(piece, index)
    return ids


class WordPieceTokenizer:
    """WordPiece tokenization in Python (the module docstring states the rule)."""

    def __init__(self, vocabulary: WordPieceVocabulary, lower_case: bool = True):
        self.vocabulary = vocabulary
        self.lower_case = lower_case
        self._ids = vocabulary.ids
        self._unk = vocabulary.special.unk

    def words(self, text: str) -> list[tuple[int, int]]:
        """The raw spans [start, end) of the words basic tokenization makes."""
        spans, start = [], None
        for position, char in enumerate(text):
            if is_separator(char) or stands_alone(char, self.lower_case):
                if start is not None:
                    spans.append((start, position))
                    start = None
                if not is_separator(char):
                    spans.append((position, position + 1))
            elif start is None:
                start = position
        if start is not None:
            spans.append((start, len(text)))
        return spans

    def _word_pieces(self, word: str) -> list[tuple[int, int, int]]:
        """(id, start, end) in the normalised word, greedy longest match first."""
        if len(word) > MAX_WORD_CHARS:
            return [(self._unk, 0, len(word))]
        pieces, start = [], 0
        while start < len(word):
            prefix = WORDPIECE_CONTINUATION if start else ""
            for end in range(len(word), start, -1):
                index = self._ids.get(prefix + word[start:end])
                if index is not None:
                    pieces.append((index, start, end))
                    start = end
                    break
            else:
                return [(self._unk, 0, len(word))]
        return pieces

    def tokenize_with_offsets(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """ids, starts, ends: text[start:end] is the raw text each piece was made from."""
        ids, starts, ends = [], [], []
        for word_start, word_end in self.words(text):
            normalized = [normalize_char(c, self.lower_case) for c in text[word_start:word_end]]
            word = "".join(normalized)
            if not word:
                continue
            # char_end[i]: normalised characters up to and with raw character i.
            char_end, total = [], 0
            for part in normalized:
                total += len(part)
                char_end.append(total)
            for index, begin, end in self._word_pieces(word):
                first = next(i for i, e in enumerate(char_end) if e > begin)
                last = next(i for i, e in enumerate(char_end) if e >= end)
                while last + 1 < len(char_end) and char_end[last + 1] == end:
                    last += 1  # the deleted characters after the piece
                ids.append(index)
                starts.append(word_start + first)
                ends.append(word_start + last + 1)
        return ids, starts, ends

    def tokenize(self, text: str) -> list[int]:
        return self.tokenize_with_offsets(text)[0]
