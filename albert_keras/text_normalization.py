"""The reference text preprocessing (`preprocess_text`) in Python: what the vocabulary
and the pretraining instances are built from. Pure Python, so the data tools need no
TensorFlow Text; its graph twin is albert_keras.tokenizer.normalize_text_graph, tested
to give the same ids."""

from __future__ import annotations

import unicodedata


def normalize_text(text: str, lower_case: bool = True) -> str:
    """Collapse whitespace, `` and '' to ", NFKD, drop combining marks, lowercase unless
    cased."""
    text = " ".join(text.split())
    text = text.replace("``", '"').replace("''", '"')
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower() if lower_case else text
