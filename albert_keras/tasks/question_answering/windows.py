"""Question and context -> the windows a question answerer reads, in TensorFlow ops
(training, evaluation and the exported `answer` signature run this one function).

- The context is tokenized whole, as in pretraining and the reference, with each piece's
  span in code points (AlbertTokenizer.tokenize_with_offsets). A span from piece i to
  piece j is the text context[start_i:end_j], so answers are slices of the context with
  no alignment step that can lose them; like the reference, an answer may start or end
  inside a word where a piece does.
- The question is tokenized whole and keeps at most max_query_length pieces.
- Window layout, as the reference: [CLS] question [SEP] context window [SEP] pad; the
  context window holds C = max_seq_length - 3 - question pieces, one window every
  min(doc_stride, C) pieces (tasks/window_batches.py).
- Candidate spans, per window and position (int32 [windows, max_seq_length], -1 where
  not a candidate): "start_char", the code-point start of the piece there, only in the
  window that reads that piece best (the reference's max-context rule); "end_char", the
  code-point end of the piece there. SentencePiece's lone "▁" (a piece of no character)
  is never a candidate.
- Gold spans: a gold answer [start, end) in code points covers the pieces from the first
  that ends after `start` to the last that begins before `end`. Answers whose ends fall
  inside a piece are thereby widened to whole pieces and counted ("gold_exact" is
  False). A window that does not hold all of the answer's pieces, and every window of an
  unanswerable question, trains towards [CLS] (start = end = 0) with is_impossible 1, as
  the reference does for SQuAD 2.0 and also for 1.1 (where no answer is then ever
  predicted).
"""

from __future__ import annotations


import tensorflow as tf

from albert_keras.tasks.question_answering.settings import WindowSettings
from albert_keras.tasks.window_batches import best_windows, window_counts
from albert_keras.tokenizer import pack_segments


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

    context_pieces, piece_starts, piece_ends = tokenizer.tokenize_with_offsets(contexts)
    context_pieces = context_pieces.with_row_splits_dtype(tf.int32)
    lengths = context_pieces.row_lengths()
    examples = tf.size(lengths)
    piece_offset = context_pieces.row_splits[:-1]  # per example, in the flat pieces
    flat_starts, flat_ends = piece_starts.flat_values, piece_ends.flat_values
    has_text = flat_ends > flat_starts  # not SentencePiece's lone "▁"

    capacity = length - 3 - question_lengths
    stride = tf.minimum(settings.doc_stride, capacity)
    counts = window_counts(lengths, capacity, stride)
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
                             seq_length=length, special=tokenizer.special)

    # Per piece (flat over the examples): the window that reads it best.
    piece_example = tf.cast(context_pieces.value_rowids(), tf.int32)
    in_example = tf.range(tf.size(piece_example)) - tf.gather(piece_offset, piece_example)
    best = (tf.gather(first_window, piece_example) + best_windows(
        in_example, tf.gather(lengths, piece_example), tf.gather(counts, piece_example),
        tf.gather(capacity, piece_example), tf.gather(stride, piece_example)))

    flat_index = piece_index.flat_values  # the windows' pieces, window after window
    flat_window = tf.cast(piece_index.value_rowids(), tf.int32)
    read_here = tf.equal(tf.gather(best, flat_index), flat_window)
    candidate = tf.gather(has_text, flat_index)
    start_char = piece_index.with_flat_values(tf.where(
        candidate & read_here, tf.gather(flat_starts, flat_index), -1))
    end_char = piece_index.with_flat_values(tf.where(
        candidate, tf.gather(flat_ends, flat_index), -1))
    before_context = tf.gather(question_lengths, window_example) + 2  # [CLS] q [SEP]
    windows = {
        "features": features,
        "window_example": window_example,
        "start_char": _place(start_char, before_context, length),
        "end_char": _place(end_char, before_context, length),
    }
    if answer_starts is None:
        return windows

    # Gold spans: the first piece that ends after the answer's start, the last that
    # begins before its end (pieces with text only).
    answer_starts = tf.cast(answer_starts, tf.int32)
    answer_ends = tf.cast(answer_ends, tf.int32)
    example_start = tf.gather(answer_starts, piece_example)
    example_end = tf.gather(answer_ends, piece_example)
    gold_first = tf.math.unsorted_segment_min(  # int32 max for none
        tf.where(has_text & (flat_ends > example_start), in_example, tf.int32.max),
        piece_example, examples)
    gold_last = tf.math.unsorted_segment_max(
        tf.where(has_text & (flat_starts < example_end), in_example, -1),
        piece_example, examples)
    answerable = (answer_starts >= 0) & (gold_first <= gold_last)

    def take(values, flat):  # values[flat] where answerable, else -1 (no pieces: no gather)
        padded = tf.concat([values, [-1]], axis=0)
        return tf.gather(padded, tf.where(answerable, flat, tf.size(values)))

    gold_first = tf.where(answerable, gold_first, 0)

    gold_exact = (answerable
                  & tf.equal(take(flat_starts, piece_offset + gold_first), answer_starts)
                  & tf.equal(take(flat_ends, piece_offset + gold_last), answer_ends))

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
