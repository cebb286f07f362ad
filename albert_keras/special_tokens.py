"""ALBERT's token conventions: the special pieces' ids and the word-start rules.

A vocabulary says where its special tokens are (SpecialIds). Every ALBERT SentencePiece
model (training.build_vocab makes them; the reference ones agree) holds ids 0-4 =
<pad> <unk> [CLS] [SEP] [MASK]; a BERT WordPiece vocabulary (the Chinese ALBERTs') has
[PAD]=0, [unused..], [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103. Plain Python (no TensorFlow, SentencePiece or tensorflow_text), so that the data code,
the masking ops included, can use the ids without the tokenizer's dependencies.
"""

from __future__ import annotations

import dataclasses
import string

PAD_ID = 0
UNK_ID = 1
CLS_ID = 2
SEP_ID = 3
MASK_ID = 4
SPECIAL_PIECES = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4, in order
FIRST_ORDINARY_ID = len(SPECIAL_PIECES)  # 5: the first piece that is not special



@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """Where a vocabulary keeps its special tokens."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @property
    def first_ordinary(self) -> int:
        """The first id after every special one: random MLM replacements start here."""
        return max(dataclasses.astuple(self)) + 1


SENTENCEPIECE_IDS = SpecialIds(PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID)

WORD_START = "\u2581"  # "▁", SentencePiece's marker for a piece that starts a word

# The reference _is_start_piece_sp's characters: ASCII punctuation (and the euro and
# pound signs) start a word; a piece made only of them and English letters may continue
# one; any other character (a digit, an accented or CJK character) makes the piece a
# word of its own ("for foreign characters, we always treat them as a whole piece").
_PUNCTUATION_PIECES = frozenset(string.punctuation) | {"€", "£"}
_ENGLISH = frozenset(string.ascii_lowercase) | _PUNCTUATION_PIECES


def is_word_start_piece(piece: str) -> bool:
    """Whether a SentencePiece piece starts a whole word for masking (the reference
    _is_start_piece_sp): "▁"-prefixed pieces, "<unk>"-like pieces, the special tokens, a
    single punctuation character, and every piece with a character outside English
    letters and punctuation, so that text without spaces (Chinese) masks piece by piece
    rather than from one punctuation mark to the next."""
    return (
        piece.startswith(WORD_START)
        or piece.startswith("<")
        or piece in _PUNCTUATION_PIECES
        or piece in SPECIAL_PIECES
        or not all(c.lower() in _ENGLISH for c in piece)
    )


WORDPIECE_CONTINUATION = "##"


def is_wordpiece_word_start(piece: str) -> bool:
    """Whether a WordPiece piece starts a whole word for masking: every piece but a
    "##" continuation (the reference BERT rule; a CJK character is a word of its own
    because basic tokenization splits each one off)."""
    return not piece.startswith(WORDPIECE_CONTINUATION)
