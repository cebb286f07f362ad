"""ALBERT's token conventions: the special pieces' ids and the word-start rule.

Every ALBERT SentencePiece model (training.build_vocab makes them; the reference ones
agree) holds ids 0-4 = <pad> <unk> [CLS] [SEP] [MASK]; ordinary pieces start at 5.
Plain Python (no TensorFlow, SentencePiece or tensorflow_text), so that the data code,
the masking ops included, can use the ids without the tokenizer's dependencies.
"""

from __future__ import annotations

import string

PAD_ID = 0
UNK_ID = 1
CLS_ID = 2
SEP_ID = 3
MASK_ID = 4
SPECIAL_PIECES = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4, in order
FIRST_ORDINARY_ID = len(SPECIAL_PIECES)  # 5: the first piece that is not special

WORD_START = "\u2581"  # "▁", SentencePiece's marker for a piece that starts a word

# Single punctuation pieces count as word starts, as in the reference _is_start_piece.
_PUNCTUATION_PIECES = frozenset(string.punctuation)


def is_word_start_piece(piece: str) -> bool:
    """Whether a piece starts a whole word for masking (the reference _is_start_piece).

    "▁"-prefixed pieces, "<unk>"-like pieces, single punctuation and the special tokens.
    """
    return (
        piece.startswith(WORD_START)
        or piece.startswith("<")
        or piece in _PUNCTUATION_PIECES
        or piece in SPECIAL_PIECES
    )
