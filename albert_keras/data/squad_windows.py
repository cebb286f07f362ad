"""Question and context -> the windows a question answerer reads, in TensorFlow ops
(training, evaluation and the exported `answer` signature run this one function).

- The context is split into words with code-point offsets (data/word_split.py: runs of
  letters and digits, each punctuation mark alone) and each word is tokenized on its own
  (data/windows.py). So every piece belongs to one word, and a span that starts at a
  word's first piece and ends at a word's last piece is exactly the text
  context[word_start:word_end] - no alignment step that can lose answers.
- The question is tokenized whole and keeps at most max_query_length pieces.
- Window layout, as the reference: [CLS] question [SEP] context window [SEP] pad; the
  context window holds C = max_seq_length - 3 - question pieces, one window every
  min(doc_stride, C) pieces (data/windows.py).
- Candidate spans, per window and position (int32 [windows, max_seq_length], -1 where
  not a candidate): "start_char", the code-point start of the word whose first piece is
  there, only in the window that reads that piece best (the reference's max-context
  rule); "end_char", the code-point end of the word whose last piece is there.
- Gold spans: a gold answer [start, end) in code points covers the words from the first
  that ends after `start` to the last that begins before `end`. Answers whose ends fall
  inside a word are widened to whole words and counted ("gold_exact" is False); the
  span's pieces are the first piece of its first word to the last of its last word. A
  window that does not hold all of them, and every window of an unanswerable question,
  trains towards [CLS] (start = end = 0) with is_impossible 1, as the reference does for
  SQuAD 2.0 and also for 1.1 (where no answer is then ever predicted).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from albert_keras.data.windows import best_windows, window_counts, word_pieces
from albert_keras.data.word_split import split_words_graph
from albert_keras.tokenizer import pack_segments


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """The reference run_squad defaults."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64

    def __post_init__(self):
        if self.max_query_length < 1 or self.doc_stride < 1:
            raise ValueError(f"max_query_length and doc_stride must be at least 1, got "
                             f"{self.max_query_length} and {self.doc_stride}")
        if self.max_seq_length < self.max_query_length + 4:
            raise ValueError(
                f"max_seq_length {self.max_seq_length} leaves no room for context after "
                f"[CLS], {self.max_query_length} question pieces and two [SEP]; it must be "
                f"at least max_query_length + 4")


def squad_windows(tokenizer, questions, contexts, settings: WindowSettings,
                  answer_starts=None, answer_ends=None) -> dict:
    """Strings [examples] -> the windows (module docstring). Returns
    "features": input_ids / segment_ids / input_mask int32 [windows, max_seq_length];
    "window_example" int32 [windows]; "start_char", "end_char" int32 [windows,
    max_seq_length]. With gold code-point spans answer_starts / answer_ends (int
    [examples], -1 for no answer) also the labels "start_positions", "end_positions"
    int32 and "is_impossible" float32 [windows], and "gold_exact" bool [examples].
    Works for 0 examples and for empty questions or contexts."""
    length = settings.max_seq_length
    questions = tf.convert_to_tensor(questions, tf.string)
    contexts = tf.convert_to_tensor(contexts, tf.string)
    question_pieces = tf.cast(tokenizer.tokenize(questions), tf.int32)[
        :, :settings.max_query_length]
    question_lengths = tf.cast(question_pieces.row_lengths(), tf.int32)

    words, word_starts, word_ends = split_words_graph(contexts)  # [examples, (words)]
    words = words.with_row_splits_dtype(tf.int64)
    pieces = word_pieces(tokenizer, words.flat_values)  # [all words, (pieces)]
    piece_counts = tf.cast(pieces.row_lengths(), tf.int32)
    context_pieces = tf.RaggedTensor.from_row_splits(
        pieces, words.row_splits).merge_dims(1, 2)  # [examples, (N)]
    lengths = tf.cast(context_pieces.row_lengths(), tf.int32)
    piece_offset = tf.cast(context_pieces.row_splits[:-1], tf.int32)  # per example

    capacity = length - 3 - question_lengths
    stride = tf.minimum(settings.doc_stride, capacity)
    counts = window_counts(lengths, capacity, stride)
    examples = tf.size(lengths)
    window_example = tf.repeat(tf.range(examples), counts)
    window_start = (tf.ragged.range(counts).flat_values
                    * tf.gather(stride, window_example))  # in the example's pieces
    window_end = tf.minimum(window_start + tf.gather(capacity, window_example),
                            tf.gather(lengths, window_example))
    first_window = tf.cumsum(counts, exclusive=True)  # per example
    offset = tf.gather(piece_offset, window_example)
    piece_index = tf.ragged.range(offset + window_start, offset + window_end)
    features = pack_segments(tf.gather(question_pieces, window_example),
                             tf.gather(context_pieces.flat_values, piece_index),
                             seq_length=length)

    # Per piece (flat over the examples): its word's offsets if it is the word's first
    # (last) piece, else -1, and the window that reads it best.
    piece_word = tf.repeat(tf.range(tf.size(piece_counts)), piece_counts)
    piece_rank = tf.ragged.range(piece_counts).flat_values
    flat_starts = tf.gather(word_starts.flat_values, piece_word)
    flat_ends = tf.gather(word_ends.flat_values, piece_word)
    is_first = piece_rank == 0
    is_last = piece_rank == tf.gather(piece_counts, piece_word) - 1
    piece_example = tf.cast(context_pieces.value_rowids(), tf.int32)
    in_example = tf.range(tf.size(piece_example)) - tf.gather(piece_offset, piece_example)
    best = (tf.gather(first_window, piece_example) + best_windows(
        in_example, tf.gather(lengths, piece_example), tf.gather(counts, piece_example),
        tf.gather(capacity, piece_example), tf.gather(stride, piece_example)))

    flat_index = piece_index.flat_values  # the windows' pieces, window after window
    flat_window = tf.cast(piece_index.value_rowids(), tf.int32)
    read_here = tf.equal(tf.gather(best, flat_index), flat_window)
    start_char = piece_index.with_flat_values(tf.where(
        tf.gather(is_first, flat_index) & read_here, tf.gather(flat_starts, flat_index), -1))
    end_char = piece_index.with_flat_values(tf.where(
        tf.gather(is_last, flat_index), tf.gather(flat_ends, flat_index), -1))
    before_context = tf.gather(question_lengths, window_example) + 2  # [CLS] q [SEP]
    windows = {
        "features": features,
        "window_example": window_example,
        "start_char": _place(start_char, before_context, length),
        "end_char": _place(end_char, before_context, length),
    }
    if answer_starts is None:
        return windows

    # Gold spans: the covered words, then their first and last pieces.
    answer_starts = tf.cast(answer_starts, tf.int32)
    answer_ends = tf.cast(answer_ends, tf.int32)

    def words_where(condition):  # per example, how many words meet it
        return tf.reduce_sum(tf.cast(condition, tf.int32), axis=1)

    first_word = words_where(word_ends <= answer_starts[:, None])
    last_word = words_where(word_starts < answer_ends[:, None]) - 1
    word_counts = tf.cast(words.row_lengths(), tf.int32)
    answerable = (answer_starts >= 0) & (first_word <= last_word) & (last_word < word_counts)

    def take(values, index):  # values[index] where answerable, else -1 (no words: no gather)
        padded = tf.concat([values, [-1]], axis=0)
        return tf.gather(padded, tf.where(answerable, index, tf.size(values)))

    word_offset = tf.cast(words.row_splits[:-1], tf.int32)
    word_first_piece = tf.cumsum(piece_counts, exclusive=True)  # flat over examples
    first_flat = take(word_first_piece, word_offset + first_word)
    last_flat = take(word_first_piece + piece_counts - 1, word_offset + last_word)
    gold_first = first_flat - piece_offset
    gold_last = last_flat - piece_offset
    gold_exact = (answerable & tf.equal(take(flat_starts, first_flat), answer_starts)
                  & tf.equal(take(flat_ends, last_flat), answer_ends))

    holds = (tf.gather(answerable, window_example)
             & (window_start <= tf.gather(gold_first, window_example))
             & (tf.gather(gold_last, window_example) < window_end))
    to_position = before_context - window_start
    windows.update(
        start_positions=tf.where(holds, tf.gather(gold_first, window_example) + to_position, 0),
        end_positions=tf.where(holds, tf.gather(gold_last, window_example) + to_position, 0),
        is_impossible=1.0 - tf.cast(holds, tf.float32),
        gold_exact=gold_exact,
    )
    return windows


def _place(values: tf.RaggedTensor, before: tf.Tensor, length: int) -> tf.Tensor:
    """Ragged per-window context values -> int32 [windows, length], each row's values
    from position `before` on, -1 elsewhere."""
    padding = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(before)], -1), tf.cast(before, values.row_splits.dtype))
    return tf.concat([padding, values], axis=1).to_tensor(-1, shape=[None, length])
