"""Fine-tuning input: TSV / CSV / JSONL rows of text_a, optional text_b, label.

The file is read and checked in Python (errors name the file and line); tokenization
and packing run in-graph, in the dataset, with the same AlbertTokenizer an exported
model uses.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import tensorflow as tf

LABEL_TYPES = ("classification", "regression")


def utf8_lines(path: str, damaged: list | None = None):
    """Yields the lines of a UTF-8 text file (line endings kept). A line that is not
    valid UTF-8 (a damaged copy, a file in another encoding) is an error naming the
    file, the line and the byte offset; with a `damaged` list, the description goes
    there and the line is yielded as None (the reader skips what it belongs to)."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problem = (f"{path}:{number}: not valid UTF-8 at byte {offset + error.start} "
                           f"of the file ({error.reason})")
                if damaged is None:
                    raise ValueError(f"{problem}; the file is damaged or in another "
                                     f"encoding") from None
                damaged.append(problem)
                line = None
            offset += len(raw)
            yield line


def jsonl_rows(path: str, damaged: list | None = None):
    """Yields (line number, dict) for each non-blank line of a JSONL file (utf8_lines
    says what `damaged` does)."""
    for number, line in enumerate(utf8_lines(path, damaged), start=1):
        if line is None or not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object per line")
        yield number, row


def _rows(path: str, damaged: list | None = None):
    """Yields (line number, dict) for each row; the first line of TSV/CSV is the header."""
    extension = os.path.splitext(path)[1].lower()
    if extension in (".jsonl", ".json"):
        yield from jsonl_rows(path, damaged)
        return
    if extension not in (".tsv", ".csv"):
        raise ValueError(f"{path}: unknown format {extension!r}; use .tsv, .csv or .jsonl")
    # A skipped damaged line reads as a blank one, so csv's line numbers stay the file's.
    f = ("\n" if line is None else line for line in utf8_lines(path, damaged))
    if extension == ".tsv":
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: the file is empty (a header row is needed)")
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{path}:{reader.line_num}: {len(row)} fields, but the header has "
                f"{len(header)} ({', '.join(header)})"
            )
        yield reader.line_num, dict(zip(header, row))


def read_examples(path: str, label_type: str = "classification", label_names=None,
                  damaged: list | None = None):
    """(text_a, text_b or None, labels) from a file, checked row by row. With a
    `damaged` list, rows that are not valid UTF-8 are skipped and described there."""
    if label_type not in LABEL_TYPES:
        raise ValueError(f"label_type must be one of {LABEL_TYPES}, not {label_type!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"fine-tuning file not found: {path}")
    label_index = {str(name): i for i, name in enumerate(label_names or [])}
    text_a, text_b, labels = [], [], []
    has_b = None
    for number, row in _rows(path, damaged):
        for column in ("text_a", "label"):
            if column not in row:
                raise ValueError(
                    f"{path}:{number}: missing column {column!r} (found {sorted(row)})"
                )
        if has_b is None:
            has_b = "text_b" in row
        elif has_b != ("text_b" in row):
            raise ValueError(f"{path}:{number}: text_b present in some rows only")
        raw = row["label"]
        try:
            if label_type == "regression":
                label = float(raw)
            elif label_index:
                label = label_index[str(raw)]
            else:
                label = int(raw)
                if label < 0:
                    raise ValueError
        except (KeyError, ValueError, TypeError):
            expected = (
                "a number" if label_type == "regression"
                else f"one of {list(label_index)}" if label_index
                else "a non-negative integer (or pass label_names)"
            )
            raise ValueError(f"{path}:{number}: label {raw!r} is not {expected}") from None
        text_a.append(str(row["text_a"]))
        if has_b:
            text_b.append(str(row["text_b"]))
        labels.append(label)
    if not labels:
        raise ValueError(f"{path}: no examples")
    dtype = np.float32 if label_type == "regression" else np.int32
    return text_a, (text_b if has_b else None), np.asarray(labels, dtype)


def finetune_dataset(
    path: str,
    tokenizer,
    seq_length: int,
    batch_size: int,
    label_type: str = "classification",
    label_names=None,
    training: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    shuffle_buffer: int = 100_000,
    skip_damaged: bool = False,
) -> tf.data.Dataset:
    """(features, labels) batches: input_ids / segment_ids / input_mask int32
    [batch, seq_length], labels int32 (classification) or float32 (regression) [batch].

    tokenizer is an albert_keras.tokenizer.AlbertTokenizer. training=True shuffles and
    drops the last partial batch; with an input_context, each input pipeline takes every
    num_input_pipelines-th example and batches per replica.
    """
    text_a, text_b, labels = read_examples(path, label_type, label_names,
                                           damaged=[] if skip_damaged else None)
    columns = (text_a, labels) if text_b is None else (text_a, text_b, labels)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if input_context is not None:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if training:
        dataset = dataset.shuffle(min(shuffle_buffer, len(labels)), seed=seed)
    dataset = dataset.batch(batch_size, drop_remainder=training)

    def tokenize(*batch):
        second = None if text_b is None else batch[1]
        return tokenizer(batch[0], second, seq_length=seq_length), batch[-1]

    return dataset.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
