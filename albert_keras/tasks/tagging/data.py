"""Word tagging data: reading tagged sentences, and the windows a tagger runs on.

Files, one sentence per block (errors name the file and line):
- CoNLL-U (.conllu): ten tab-separated columns; the word is column 2 and the tag column
  4 (UPOS) by default. Comment lines (#), multiword-token ranges (`3-4`) and empty nodes
  (`8.1`) are skipped: the words are the syntactic words.
- CoNLL-2003-style columns (.conll, .txt, .bio, .iob, ...): the word first, tags in later
  columns split by whitespace, the last by default; `-DOCSTART-` lines are skipped.
- JSONL (.jsonl): one {"tokens": [...], "tags": [...]} object per line.
`tag_column` is 1-based, as column numbers are in the formats' own documentation.

Pieces and windows (the one algorithm that training, evaluation and the exported `tag`
and `tag_words` signatures share, in TensorFlow ops; the arithmetic is tasks/window_batches.py):
- each word is tokenized on its own; the first piece of a word carries the word's tag,
  the other pieces are ignored by the loss and the metrics;
- a sentence is cut into windows of at most C = seq_length - 2 pieces ([CLS] window
  [SEP]) every `stride` pieces; sentences are never truncated;
- each word is read in exactly one window: the one where its first piece has the most
  context (windows.best_windows). Training labels the word there, and prediction takes
  its tag from there.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from albert_keras.tasks.classification.data import jsonl_rows, utf8_lines
from albert_keras.tasks.window_batches import (best_windows, window_batches, window_counts,
                                               word_pieces)
from albert_keras.tasks.tagging.settings import FORMATS, TaggingSettings
from albert_keras.tokenizer import pack_segments

_CONLLU_COLUMNS = 10
_UPOS_COLUMN = 4


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its words, their tags, and the file line of each word."""
    words: tuple
    tags: tuple
    lines: tuple


def detect_format(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".conllu":
        return "conllu"
    if extension in (".jsonl", ".json"):
        return "jsonl"
    return "conll"


def read_tagged_file(path: str, data_format: str | None = None,
                     tag_column: int | None = None, damaged: list | None = None) -> list:
    """The TaggedSentences of a file, checked line by line. data_format: one of FORMATS,
    by extension when None; tag_column: 1-based (CoNLL-U: 4, UPOS; columns: the last).
    With a `damaged` list, a sentence with a line that is not valid UTF-8 is skipped
    and the line described there (else it is an error naming the line)."""
    data_format = data_format or detect_format(path)
    if data_format not in FORMATS:
        raise ValueError(f"data_format must be one of {FORMATS}, not {data_format!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tagging file not found: {path}")
    if tag_column is not None and (not isinstance(tag_column, int) or tag_column < 2):
        raise ValueError(f"tag_column must be a column number from 2 (column 1 holds the "
                         f"word), got {tag_column!r}")
    if data_format == "jsonl":
        sentences = list(_read_jsonl(path, damaged))
    else:
        sentences = list(_read_columns(path, data_format, tag_column, damaged))
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    return sentences


def _read_jsonl(path, damaged):
    for number, row in jsonl_rows(path, damaged):
        if "tokens" not in row or "tags" not in row:
            raise ValueError(f"{path}:{number}: expected an object with 'tokens' and 'tags'")
        words, tags = row["tokens"], row["tags"]
        if not (isinstance(words, list) and isinstance(tags, list)
                and all(isinstance(v, str) for v in words + tags)):
            raise ValueError(f"{path}:{number}: 'tokens' and 'tags' must be lists of strings")
        if len(words) != len(tags):
            raise ValueError(f"{path}:{number}: {len(words)} tokens but {len(tags)} tags")
        if not words:
            raise ValueError(f"{path}:{number}: an empty sentence")
        _check_words(path, number, words, tags)
        yield TaggedSentence(tuple(words), tuple(tags), (number,) * len(words))


def _check_words(path, number, words, tags):
    for word, tag in zip(words, tags):
        if not word.strip():
            raise ValueError(f"{path}:{number}: an empty word")
        if not tag.strip() or tag != tag.strip():
            raise ValueError(f"{path}:{number}: tag {tag!r} is empty or has spaces")


def _read_columns(path, data_format, tag_column, damaged):
    conllu = data_format == "conllu"
    words, tags, lines = [], [], []
    first_line = None
    width = None  # the column count of a columns file, fixed by its first word line

    def sentence():
        if first_line is not None and not words:
            raise ValueError(f"{path}:{first_line}: a sentence with no words")
        return TaggedSentence(tuple(words), tuple(tags), tuple(lines))

    in_damaged_sentence = False
    for number, raw in enumerate(utf8_lines(path, damaged), start=1):
        if raw is None:
            in_damaged_sentence = True
            continue
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            if first_line is not None and not in_damaged_sentence:
                yield sentence()
            words, tags, lines, first_line = [], [], [], None
            in_damaged_sentence = False
            continue
        if conllu and line.startswith("#"):
            continue
        if first_line is None:
            first_line = number
        if conllu:
            columns = line.split("\t")
            if len(columns) != _CONLLU_COLUMNS:
                raise ValueError(f"{path}:{number}: {len(columns)} tab-separated columns; "
                                 f"CoNLL-U has {_CONLLU_COLUMNS}")
            if "-" in columns[0] or "." in columns[0]:
                continue  # a multiword-token range or an empty node
            column = tag_column or _UPOS_COLUMN
        else:
            columns = line.split()
            if columns[0] == "-DOCSTART-":
                first_line = None
                continue
            if width is None:
                width = len(columns)
                if width < 2:
                    raise ValueError(f"{path}:{number}: one column; a word and its tag "
                                     f"are needed")
            if len(columns) != width:
                raise ValueError(f"{path}:{number}: {len(columns)} columns, but the "
                                 f"file's first word line has {width}")
            column = tag_column or width
        if column > len(columns):
            raise ValueError(f"{path}:{number}: no column {column} (the line has "
                             f"{len(columns)})")
        word, tag = columns[1] if conllu else columns[0], columns[column - 1]
        if conllu and tag == "_":
            raise ValueError(f"{path}:{number}: word {word!r} has no tag in column "
                             f"{column}")
        _check_words(path, number, [word], [tag])
        words.append(word)
        tags.append(tag)
        lines.append(number)
    if first_line is not None and not in_damaged_sentence:
        yield sentence()


def tag_names_of(sentences) -> list:
    """The tags that occur, sorted: a tagger's label set when none is given."""
    return sorted({tag for sentence in sentences for tag in sentence.tags})


def tag_ids(sentences, tag_names, path: str) -> list:
    """Each sentence's tags as ids of tag_names; an unknown tag names its file and line."""
    index = {name: i for i, name in enumerate(tag_names)}
    ids = []
    for sentence in sentences:
        for tag, line in zip(sentence.tags, sentence.lines):
            if tag not in index:
                raise ValueError(f"{path}:{line}: tag {tag!r} is not one of the model's "
                                 f"{len(tag_names)} tags ({', '.join(tag_names[:20])}"
                                 f"{', ...' if len(tag_names) > 20 else ''})")
        ids.append([index[tag] for tag in sentence.tags])
    return ids


# ---------------------------------------------------------------- windows (in the graph)
def word_windows(tokenizer, words: tf.RaggedTensor, seq_length: int, stride: int) -> dict:
    """Words [sentences, (words)] (strings) -> the windows the tagger runs on.

    Returns "features": input_ids / segment_ids / input_mask int32 [windows, seq_length];
    "window_sentence" int32 [windows]; "word_window" and "word_position" int32 [all
    words]: the window that reads each word (in words.flat_values order) and the position
    of its first piece there. Works for 0 sentences and for sentences of 0 words (one
    empty window each).
    """
    TaggingSettings(seq_length, stride)  # the window rules
    capacity = seq_length - 2
    words = words.with_row_splits_dtype(tf.int64)
    pieces = word_pieces(tokenizer, words.flat_values)  # [all words, (pieces)]
    piece_counts = tf.cast(pieces.row_lengths(), tf.int32)
    sentence_pieces = tf.RaggedTensor.from_row_splits(
        pieces, words.row_splits).merge_dims(1, 2)  # [sentences, (N)]
    lengths = tf.cast(sentence_pieces.row_lengths(), tf.int32)

    # Windows: sentence s has 1 + ceil(max(N - C, 0) / stride) of them.
    counts = window_counts(lengths, capacity, stride)
    window_sentence = tf.repeat(tf.range(tf.size(lengths)), counts)
    window_index = tf.ragged.range(counts).flat_values  # k within its sentence
    window_start = window_index * stride
    window_end = tf.minimum(window_start + capacity, tf.gather(lengths, window_sentence))
    first_window = tf.cumsum(counts, exclusive=True)  # per sentence

    # The windows' pieces, gathered from the sentences' flat pieces.
    sentence_offset = tf.cast(tf.gather(sentence_pieces.row_splits, window_sentence), tf.int32)
    piece_index = tf.ragged.range(sentence_offset + window_start, sentence_offset + window_end)
    window_pieces = tf.gather(sentence_pieces.flat_values, piece_index)
    features = pack_segments(window_pieces, seq_length=seq_length, special=tokenizer.special)

    # Each word's first piece, within its sentence, and the window that reads it best.
    word_sentence = tf.cast(words.value_rowids(), tf.int32)
    word_first = (tf.cumsum(piece_counts, exclusive=True)
                  - tf.cast(tf.gather(sentence_pieces.row_splits, word_sentence), tf.int32))
    best = best_windows(word_first, tf.gather(lengths, word_sentence),
                        tf.gather(counts, word_sentence), capacity, stride)
    return {
        "features": features,
        "window_sentence": window_sentence,
        "word_window": tf.gather(first_window, word_sentence) + best,
        "word_position": word_first - best * stride + 1,  # + 1: [CLS]
    }


def window_labels(windows: dict, word_tags) -> dict:
    """label_ids int32 and label_weights float32 [windows, seq_length]: each word's tag id
    at its first piece in the window that reads it, weight 1 there and 0 elsewhere.
    word_tags: int [all words], in the order of word_windows' words."""
    shape = tf.shape(windows["features"]["input_ids"])
    index = tf.stack([windows["word_window"], windows["word_position"]], axis=1)
    return {
        "label_ids": tf.scatter_nd(index, tf.cast(word_tags, tf.int32), shape),
        "label_weights": tf.scatter_nd(index, tf.ones_like(word_tags, tf.float32), shape),
    }


def word_logits(windows: dict, window_logits: tf.Tensor) -> tf.Tensor:
    """The tagger's logits [windows, seq, tags] read back per word: [all words, tags]."""
    return tf.gather_nd(window_logits,
                        tf.stack([windows["word_window"], windows["word_position"]], axis=1))


# ---------------------------------------------------------------- tf.data
def _ragged(rows, dtype):
    return tf.ragged.constant(rows, dtype=dtype, row_splits_dtype=tf.int64) if rows else \
        tf.RaggedTensor.from_row_lengths(tf.zeros([0], dtype), tf.zeros([0], tf.int64))


def tagging_dataset(sentences, tag_ids_per_sentence, tokenizer, seq_length: int, stride: int,
                    batch_size: int, training: bool = True,
                    input_context: tf.distribute.InputContext | None = None,
                    seed: int | None = None, sentences_per_map: int = 64,
                    shuffle_buffer: int = 10_000) -> tf.data.Dataset:
    """Batches of windows: the backbone's features with "label_ids" and "label_weights"
    [batch, seq_length] (model/tagger.py). training=True shuffles sentences and windows
    and drops the last partial batch; with an input_context, each input pipeline takes
    every num_input_pipelines-th sentence and batches per replica."""
    words = _ragged([list(s.words) for s in sentences], tf.string)
    tags = _ragged([list(t) for t in tag_ids_per_sentence], tf.int32)

    def to_windows(batch_words, batch_tags):
        windows = word_windows(tokenizer, batch_words, seq_length, stride)
        return dict(windows["features"], **window_labels(windows, batch_tags.flat_values))

    return window_batches(tf.data.Dataset.from_tensor_slices((words, tags)), len(sentences),
                          to_windows, batch_size, training, input_context, seed,
                          sentences_per_map, shuffle_buffer)


def predict_word_logits(forward, tokenizer, sentences, seq_length: int, stride: int,
                        sentences_per_batch: int = 64) -> list:
    """Per sentence, the logits [words, tags] (numpy) of the model call `forward`
    (features -> logits [windows, seq, tags]); the evaluation path, in file order."""
    results = []
    for begin in range(0, len(sentences), sentences_per_batch):
        chunk = sentences[begin:begin + sentences_per_batch]
        words = _ragged([list(s.words) for s in chunk], tf.string)
        windows = word_windows(tokenizer, words, seq_length, stride)
        logits = word_logits(windows, forward(windows["features"])).numpy()
        splits = np.cumsum([0] + [len(s.words) for s in chunk])
        results += [logits[a:b] for a, b in zip(splits[:-1], splits[1:])]
    return results


def predict_tags(forward, tokenizer, sentences, seq_length: int, stride: int,
                 tag_names) -> list:
    """Per sentence, the predicted tag names (predict_word_logits, then argmax)."""
    logits = predict_word_logits(forward, tokenizer, sentences, seq_length, stride)
    return [[tag_names[i] for i in sentence.argmax(axis=-1)] for sentence in logits]
