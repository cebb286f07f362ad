"""Reading a plain-text corpus: one sentence per line, a blank line between documents
(INPUT_FORMATS "sentences", the reference format); or one paragraph per line ("paragraphs",
as Chinese corpora usually come), each paragraph a document split into sentences by
albert_keras.data.sentences (blank lines are ignored).

Invalid UTF-8: by default a line that does not decode is an error naming the file and
line; with on_invalid_utf8="skip" such lines are dropped and counted instead.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Iterator

from albert_keras.data.sentences import split_sentences


INPUT_FORMATS = ("sentences", "paragraphs")


class CorpusError(ValueError):
    """Bad corpus input; the message names the file (and line)."""


@dataclasses.dataclass
class CorpusCounts:
    documents: int = 0
    sentences: int = 0
    invalid_lines: int = 0
    first_invalid: int | None = None  # line number of the first skipped line


def expand_input_pattern(pattern: str) -> list[str]:
    """Sorted files for a glob (or comma-separated globs); errors if none match."""
    files = set()
    for part in pattern.split(","):
        part = part.strip()
        if part:
            files.update(_glob_files(part))
    if not files:
        raise CorpusError(f"no input files match {pattern!r}")
    return sorted(files)


def _glob_files(pattern: str) -> list[str]:
    if "://" in pattern:  # gs:// and the other file systems TensorFlow knows (Beam runners)
        import tensorflow as tf

        return [path for path in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(path)]
    return [path for path in glob.glob(pattern) if os.path.isfile(path)]


def _open_binary(path: str):
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.GFile(path, "rb")
    return open(path, "rb")


def read_documents(
    path: str, on_invalid_utf8: str = "error", counts: CorpusCounts | None = None,
    input_format: str = "sentences",
) -> Iterator[list[tuple[int, str]]]:
    """Yields the documents of one file as lists of (line number, sentence)."""
    if on_invalid_utf8 not in ("error", "skip"):
        raise ValueError(f"on_invalid_utf8 must be 'error' or 'skip', not {on_invalid_utf8!r}")
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, not {input_format!r}")
    counts = counts if counts is not None else CorpusCounts()
    document: list[tuple[int, str]] = []
    with _open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                if on_invalid_utf8 == "error":
                    raise CorpusError(
                        f"{path}:{number}: not valid UTF-8 ({error.reason} at byte "
                        f"{error.start} of the line)"
                    ) from None
                counts.invalid_lines += 1
                counts.first_invalid = counts.first_invalid or number
                continue
            if line and input_format == "paragraphs":
                sentences = [(number, s) for s in split_sentences(line)]
                counts.documents += 1
                counts.sentences += len(sentences)
                yield sentences
            elif line:
                document.append((number, line))
            elif document:
                counts.documents += 1
                counts.sentences += len(document)
                yield document
                document = []
    if document:
        counts.documents += 1
        counts.sentences += len(document)
        yield document
