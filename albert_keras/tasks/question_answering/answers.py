"""Answer extraction: a question answerer's outputs per window -> one answer per question,
for both heads, each as its source does it.

Candidates per window, in the order the sources list them:
- span head (run_squad_v1.py, transformers' question-answering pipeline; outputs
  "start_logits", "end_logits"): the n_best_size highest start logits and the
  n_best_size highest end logits over the window's real positions (ties: the lower
  position first; padding is left out, so that cutting a batch's padding changes
  nothing); every (start, end) pair, start rank major; score = start + end logit.
- reference SQuAD 2.0 head (squad_utils.create_v2_model; outputs "start_top_index",
  "start_top_log_probs", "end_top_index", "end_top_log_probs", "cls_logits"): the
  model's own beam, start_n_top starts each with end_n_top ends; score = start +
  end log-probability.

The rule, as the sources state it (`extract_answers_python`, plain Python, the spec):
1. A candidate counts when its start is a context piece in the window that reads it
   best, its end is a context piece, start <= end, and the span is at most
   max_answer_length pieces (windows' "start_char" and "end_char", windows.py).
2. The question's answer is the counting candidate with the highest score over all its
   windows; ties go to the earlier window, then the earlier candidate in the order
   above (the sources' stable sort).
3. SQuAD 2.0, "no answer": null_odds is, for the span head, the least [CLS] score (start
   + end logit at position 0) over the question's windows minus the best score; for the
   reference head, the mean of cls_logits over the question's windows. The answer is ""
   when null_odds > null_threshold (0.0 by default; training.finetune picks the dev
   set's best-F1 threshold). SQuAD 1.1 never answers "" (null_odds is -inf).
The answer is context[start:end] with start and end in code points (-1 and -1 for "").
A question with no counting candidate at all answers "" with score -inf.

`extract_answers` is the same rule in TensorFlow ops, which the evaluation path and the
exported `answer` signature both run; the tests check it against the Python spec.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from albert_keras.tasks.question_answering.settings import AnswerSettings

BEAM_OUTPUTS = ("start_top_index", "start_top_log_probs", "end_top_index",
                "end_top_log_probs", "cls_logits")


def is_beam_output(outputs) -> bool:
    """Whether a model's outputs are the reference SQuAD 2.0 head's."""
    return "cls_logits" in outputs


# ---------------------------------------------------------------- the spec, in Python
def extract_answers_python(windows: dict, outputs: dict, contexts,
                           settings: AnswerSettings) -> list:
    """Per question (in order), a dict text/start/end/score/null_odds (module docstring).
    windows: squad_windows' result (numpy or tensors); outputs: the model's outputs over
    the windows; contexts: the questions' context strings."""
    outputs = {name: np.asarray(value) for name, value in outputs.items()}
    window_example = np.asarray(windows["window_example"])
    start_char, end_char = np.asarray(windows["start_char"]), np.asarray(windows["end_char"])
    beam = is_beam_output(outputs)
    answers = []
    for example, context in enumerate(contexts):
        # float32 sums and differences, as the graph computes them.
        best, best_score = None, np.float32(-np.inf)
        null_scores = []
        for w in np.flatnonzero(window_example == example):
            if beam:
                null_scores.append(outputs["cls_logits"][w])
                candidates = _beam_candidates(outputs, w)
            else:
                null_scores.append(outputs["start_logits"][w, 0] + outputs["end_logits"][w, 0])
                candidates = _span_candidates(outputs, windows, w, settings.n_best_size)
            for s, e, score in candidates:
                if start_char[w, s] < 0 or end_char[w, e] < 0 or e < s:
                    continue
                if e - s + 1 > settings.max_answer_length:
                    continue
                if score > best_score:  # strictly: ties keep the earlier candidate
                    best, best_score = (int(start_char[w, s]), int(end_char[w, e])), score
        if not settings.version_2:
            null_odds = -math.inf
        elif beam:
            null_odds = np.mean(np.array(null_scores, np.float32), dtype=np.float32)
        else:
            null_odds = np.float32(min(null_scores) - best_score)
        if best is None or null_odds > settings.null_threshold:
            best = (-1, -1)
        answers.append(dict(text=context[best[0]:best[1]], start=best[0], end=best[1],
                            score=float(best_score), null_odds=float(null_odds)))
    return answers


def _span_candidates(outputs, windows, w, n):
    start_logits, end_logits = outputs["start_logits"][w], outputs["end_logits"][w]
    real = np.asarray(windows["features"]["input_mask"])[w, :len(start_logits)] > 0

    def top(logits):  # the n highest real positions; the lower position first on ties
        return sorted(np.flatnonzero(real), key=lambda i: -logits[i])[:n]

    return [(s, e, start_logits[s] + end_logits[e])
            for s in top(start_logits) for e in top(end_logits)]


def _beam_candidates(outputs, w):
    starts, start_scores = outputs["start_top_index"][w], outputs["start_top_log_probs"][w]
    ends, end_scores = outputs["end_top_index"][w], outputs["end_top_log_probs"][w]
    return [(starts[i], ends[i, j], start_scores[i] + end_scores[i, j])
            for i in range(len(starts)) for j in range(ends.shape[1])]


# ---------------------------------------------------------------- the same, in the graph
def extract_answers(windows: dict, outputs: dict, contexts, settings: AnswerSettings) -> dict:
    """extract_answers_python in TensorFlow ops, for a batch of questions. The span
    head's logits may be cut to fewer positions than the windows have (padding
    trimmed). contexts: string [questions]. Returns "text" string, "start", "end" int32
    (code points), "score", "null_odds" float32 [questions]."""
    window_example = tf.cast(windows["window_example"], tf.int32)
    contexts = tf.convert_to_tensor(contexts, tf.string)
    questions = tf.size(contexts)
    if is_beam_output(outputs):
        start_index = tf.cast(outputs["start_top_index"], tf.int32)  # [windows, n]
        end_index = tf.cast(outputs["end_top_index"], tf.int32)  # [windows, n, m]
        scores = (tf.cast(outputs["start_top_log_probs"], tf.float32)[:, :, None]
                  + tf.cast(outputs["end_top_log_probs"], tf.float32))
        null_scores = tf.cast(outputs["cls_logits"], tf.float32)
    else:
        start_index, end_index, scores, null_scores = _span_candidates_graph(windows, outputs,
                                                                             settings)
    start_at = tf.gather(windows["start_char"], start_index, batch_dims=1)  # [windows, n]
    end_at = tf.gather(windows["end_char"], end_index, batch_dims=1)  # [windows, n, m]
    span = end_index - start_index[:, :, None]
    valid = ((start_at >= 0)[:, :, None] & (end_at >= 0)
             & (span >= 0) & (span < settings.max_answer_length))
    scores = tf.where(valid, scores, -np.inf)
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])  # start rank major, as the loops
    pair = tf.argmax(flat, axis=1, output_type=tf.int32)  # the first best in the window
    ends_per_start = tf.shape(scores)[2]
    window_score = tf.reduce_max(flat, axis=1)
    window_start = tf.gather(start_at, pair // ends_per_start, batch_dims=1)
    window_end = tf.gather(tf.reshape(end_at, tf.shape(flat)), pair, batch_dims=1)

    # Across a question's windows: the best score, the earliest window on ties.
    best_score = tf.math.unsorted_segment_max(window_score, window_example, questions)
    has_candidate = tf.math.unsorted_segment_max(  # (the max of only -inf is not -inf)
        tf.cast(window_score > -np.inf, tf.int32), window_example, questions) > 0
    best_score = tf.where(has_candidate, best_score, -np.inf)
    window_id = tf.range(tf.size(window_example))
    is_best = tf.equal(window_score, tf.gather(best_score, window_example))
    best_window = tf.math.unsorted_segment_min(
        tf.where(is_best, window_id, tf.int32.max), window_example, questions)
    best_window = tf.minimum(best_window, tf.maximum(tf.size(window_example) - 1, 0))
    if not settings.version_2:
        null_odds = tf.fill([questions], -np.inf)
    elif is_beam_output(outputs):
        null_odds = tf.math.unsorted_segment_mean(null_scores, window_example, questions)
    else:
        null_odds = tf.math.unsorted_segment_min(null_scores, window_example,
                                                 questions) - best_score
    answered = has_candidate & ~(null_odds > settings.null_threshold)
    start = tf.where(answered, tf.gather(window_start, best_window), -1)
    end = tf.where(answered, tf.gather(window_end, best_window), -1)
    text = tf.where(answered, tf.strings.substr(contexts, tf.maximum(start, 0),
                                                tf.maximum(end - start, 0), unit="UTF8_CHAR"), "")
    return {"text": text, "start": start, "end": end, "score": best_score,
            "null_odds": null_odds}


def _span_candidates_graph(windows, outputs, settings):
    """The span head's candidates: (start index [windows, k], end index [windows, k, k],
    scores [windows, k, k], [CLS] scores [windows])."""
    start_logits = tf.cast(outputs["start_logits"], tf.float32)
    end_logits = tf.cast(outputs["end_logits"], tf.float32)
    width = tf.shape(start_logits)[1]
    real = windows["features"]["input_mask"][:, :width] > 0
    k = tf.minimum(settings.n_best_size, width)
    # Padding sorts last and never counts (its start_char and end_char are -1).
    start_top, start_index = tf.math.top_k(tf.where(real, start_logits, -np.inf), k)
    end_top, end_index = tf.math.top_k(tf.where(real, end_logits, -np.inf), k)
    end_index = tf.broadcast_to(end_index[:, None, :], [tf.shape(end_index)[0], k, k])
    scores = start_top[:, :, None] + end_top[:, None, :]
    return start_index, end_index, scores, start_logits[:, 0] + end_logits[:, 0]
