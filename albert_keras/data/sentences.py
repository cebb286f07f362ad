"""Sentence splitting for text that comes a paragraph per line (Chinese corpora usually
do), one rule for Chinese and English:

- A sentence ends after a run of sentence-final marks: the full-width 。！？； (and the
  ideographic full stop ｡), which end it wherever they stand, or the ASCII . ! ? when
  whitespace or the end of the text follows (so that 3.14, U.S.A and e.g. inside a
  sentence do not end it) and the next word does not start with a lowercase letter.
- Closing quotes and brackets right after the marks (” ’ " ' 」 』 ） ) 】 》 〉 ］ ]) belong
  to the sentence they close.
- Whitespace between sentences belongs to neither; a text with no final mark is one
  sentence.

sentence_spans gives each sentence's [start, end) in code points, so that callers
(pretraining data, summaries) can point back into the raw text.
"""

from __future__ import annotations

import re

_CHINESE_FINAL = "。！？；｡"
_ASCII_FINAL = ".!?"
_CLOSING = "”’\"'」』）)】》〉］]"
_BOUNDARY = re.compile(
    f"[{_CHINESE_FINAL}]+[{re.escape(_ASCII_FINAL)}{_CHINESE_FINAL}]*[{re.escape(_CLOSING)}]*"
    f"|[{re.escape(_ASCII_FINAL)}]+[{re.escape(_CLOSING)}]*(?=\\s|$)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence of text, in order, without surrounding whitespace."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group()[0] in _ASCII_FINAL:
            rest = text[end:].lstrip()
            if rest and rest[0].islower():
                continue  # "e.g. the", "Mr. smith": no new sentence starts here
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    trimmed = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            trimmed.append((start, end))
    return trimmed


def split_sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]
