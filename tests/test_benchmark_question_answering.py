"""The pure helpers of benchmarks/question_answering.py: the port of transformers 4.57's
question-answering postprocess, the chain of changes from its answer to ours, and the
classification of differences, on hand-made windows (no model runs)."""

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.data.squad_answers import AnswerSettings, extract_answers_python
from albert_keras.data.windows import best_windows as graph_best_windows
from albert_keras.data.word_split import split_words
from benchmarks import question_answering as qa

CONTEXT = "Go to Paris, now."
# What the pipeline's fast ALBERT tokenizer gives for the context: a "\u2581" piece's
# offsets take in the space before it; whitespace words are "Go", "to", "Paris,", "now.".
PIECES = [((0, 2), (0, 2)), ((2, 5), (2, 5)), ((5, 11), (5, 12)), ((11, 12), (5, 12)),
          ((12, 16), (12, 17)), ((16, 17), (12, 17))]
POSITION = {"go": 3, "to": 4, "paris": 5, "comma": 6, "now": 7, "dot": 8}  # in the window


def words(text=CONTEXT):
    return [(s, e) for _, s, e in split_words(text)]


def pipeline_window(start_at=(), end_at=(), cls=-5.0, input_ids=None):
    """[CLS] one question piece [SEP] the six context pieces [SEP], logits 0 except
    `start_at`/`end_at` {position: logit} and [CLS]."""
    n = 3 + len(PIECES) + 1
    start, end = np.zeros(n), np.zeros(n)
    start[0] = end[0] = cls
    for position, value in dict(start_at).items():
        start[position] = value
    for position, value in dict(end_at).items():
        end[position] = value
    sequence_ids = [None, 0, None] + [1] * len(PIECES) + [None]
    offsets = [[0, 0], [0, 5], [0, 0]] + [list(o) for o, _ in PIECES] + [[0, 0]]
    spans = [None, [0, 5], None] + [list(w) for _, w in PIECES] + [None]
    return dict(input_ids=input_ids or [2, 50] + [3] + list(range(100, 106)) + [3],
                start=start.tolist(), end=end.tolist(),
                p_mask=[0, 1, 1] + [0] * len(PIECES) + [1], offsets=offsets,
                sequence_ids=sequence_ids, words=spans)


def test_timing_set_is_a_seeded_choice_in_file_order():
    chosen = qa.timing_set(32, 781)
    assert chosen == sorted(chosen) == qa.timing_set(32, 781)
    assert len(set(chosen)) == 32 and max(chosen) < 781
    assert qa.timing_set(900, 10) == list(range(10))


def test_batches_cycle_up_to_one_full_batch():
    assert qa.batches([5, 6, 7], 4) == [[5, 6, 7, 5]]
    assert qa.batches(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert qa.batches([], 4) == []


def test_pipeline_port_widens_to_whitespace_words_with_the_space_before():
    window = pipeline_window({POSITION["paris"]: 5.0}, {POSITION["paris"]: 5.0})
    found = qa.pipeline_answer([window], CONTEXT)
    assert found["text"] == " Paris," and (found["start"], found["end"]) == (5, 12)


def test_pipeline_port_sums_spans_that_widen_to_the_same_text():
    # "now" is the best single span (logits 5 + 5), but the spans "Paris" and "Paris,"
    # (4.8 + 4.8 each) both widen to " Paris,": summed, they win.
    window = pipeline_window({POSITION["paris"]: 4.8, POSITION["now"]: 5.0},
                             {POSITION["paris"]: 4.8, POSITION["comma"]: 4.8,
                              POSITION["now"]: 5.0})
    assert qa.pipeline_answer([window], CONTEXT)["text"] == " Paris,"
    assert qa.ladder_answer(windows_for_ladder(window), CONTEXT, 1)["text"] == " now."


def test_pipeline_port_answers_nothing_when_cls_wins():
    window = pipeline_window({POSITION["to"]: 1.0}, {POSITION["to"]: 1.0}, cls=3.0)
    assert qa.pipeline_answer([window], CONTEXT)["text"] == ""
    for state in range(1, 6):
        assert qa.ladder_answer(windows_for_ladder(window), CONTEXT, state)["text"] == ""


def windows_for_ladder(*windows):
    return qa.pipeline_windows_for_ladder(list(windows), CONTEXT, words(), stride=2)


def test_word_bounds_skip_the_space_and_need_whole_words():
    offsets = [[0, 0]] + [list(o) for o, _ in PIECES]
    first, last = qa.word_bounds(offsets, CONTEXT, words())
    assert first == [-1, 0, 3, 6, 11, 13, 16]
    assert last == [-1, 2, 5, 11, 12, 16, 17]
    # A piece ending inside a word ends no word.
    assert qa.word_bounds([[5, 9]], CONTEXT, words()) == ([6], [-1])
    # A lone space piece is the first piece of the word after it (as when the word is
    # tokenized alone: "\u2581" "paris"); the piece after it then is not.
    assert qa.word_bounds([[5, 6], [6, 11], [11, 12]], CONTEXT, words()) == (
        [6, -1, 11], [-1, 11, 12])


def test_ladder_keeps_our_word_bounds_where_the_pipeline_widens():
    window = pipeline_window({POSITION["paris"]: 5.0}, {POSITION["paris"]: 5.0})
    texts = [qa.ladder_answer(windows_for_ladder(window), CONTEXT, state)["text"]
             for state in range(1, 6)]
    assert texts == [" Paris,", "Paris", "Paris", "Paris", "Paris"]


def test_ladder_word_bounds_rule_out_spans_inside_words():
    # The pipeline's best span ends at "," (the last piece of the whitespace word
    # "Paris,", but not of our word "Paris"): ours takes the best span on word bounds.
    window = pipeline_window({POSITION["paris"]: 5.0, POSITION["now"]: 2.0},
                             {POSITION["comma"]: 5.0, POSITION["now"]: 2.0})
    assert qa.ladder_answer(windows_for_ladder(window), CONTEXT, 1)["text"] == " Paris,"
    # "," is a word of its own for ours: the span "Paris," is on word bounds.
    assert qa.ladder_answer(windows_for_ladder(window), CONTEXT, 2)["text"] == "Paris,"


def test_context_starts_follow_the_overlap_and_best_windows_match_the_graph():
    first = dict(input_ids=[2, 9, 3, 10, 11, 12, 13, 3], sequence_ids=[None, 0, None] + [1] * 4
                 + [None])
    second = dict(input_ids=[2, 9, 3, 12, 13, 14, 3], sequence_ids=[None, 0, None] + [1] * 3
                  + [None])
    assert qa.context_starts([first, second], stride=2) == [0, 2]
    with pytest.raises(ValueError):
        qa.context_starts([first, dict(second, input_ids=[2, 9, 3, 99, 13, 14, 3])], 2)
    for total, capacity, stride in ((10, 4, 2), (13, 6, 3), (5, 8, 4), (17, 7, 2)):
        count = 1 + -(-max(total - capacity, 0) // stride)
        starts = [k * stride for k in range(count)]
        lengths = [min(capacity, total - s) for s in starts]
        pieces = tf.range(total)
        expected = graph_best_windows(pieces, tf.fill([total], total), tf.fill([total], count),
                                      capacity, stride).numpy().tolist()
        assert qa.best_windows(starts, lengths, total) == expected


def our_window(ids, start_char, end_char, rng):
    n = len(ids)
    return dict(input_ids=ids, start=rng.normal(size=n).tolist(),
                end=rng.normal(size=n).tolist(), start_char=start_char, end_char=end_char)


@pytest.mark.parametrize("seed", range(20))
def test_ladder_with_all_changes_is_our_extraction(seed):
    """ladder_answer's last state on our windows is extract_answers_python."""
    rng = np.random.default_rng(seed)
    context = "Go to Paris, now. " * 3
    spans = words(context)
    windows = []
    for first in (0, 4, 8):  # three windows of 7 context pieces, 4 apart
        chosen = spans[first:first + 7]
        start_char = [-1, -1, -1] + [s if rng.random() < 0.8 else -1 for s, _ in chosen] + [-1]
        end_char = [-1, -1, -1] + [e for _, e in chosen] + [-1]
        windows.append(our_window([2, 50, 3] + [60] * len(chosen) + [3], start_char, end_char,
                                  rng))
    width = max(len(w["input_ids"]) for w in windows)

    def padded(key, fill):
        return np.array([w[key] + [fill] * (width - len(w[key])) for w in windows])
    dumped = dict(window_example=np.zeros(3, int), start_char=padded("start_char", -1),
                  end_char=padded("end_char", -1),
                  features=dict(input_mask=padded("input_ids", 0) > 0))
    outputs = dict(start_logits=padded("start", -1e4).astype(np.float32),
                   end_logits=padded("end", -1e4).astype(np.float32))
    settings = AnswerSettings(n_best_size=3, max_answer_length=4)
    expected = extract_answers_python(dumped, outputs, [context], settings)[0]
    found = qa.ladder_answer(qa.our_windows_for_ladder(windows), context, 5, n_best=3,
                             max_answer_len=4)
    assert (found["text"], found["start"]) == (expected["text"], expected["start"])


def test_inputs_kind():
    def windows(*ids):
        return [dict(input_ids=i) for i in ids]
    base = windows([2, 7, 3, 10, 11, 12, 3])
    assert qa.inputs_kind(base, base) == "same"
    assert qa.inputs_kind(base, windows([2, 7, 3, 10, 5, 11, 12, 3])) == "tokenization"
    assert qa.inputs_kind(base, windows([2, 7, 3, 10, 11, 3], [2, 7, 3, 11, 12, 3])) == "windows"
    assert qa.inputs_kind(base, windows([2, 7, 8, 3, 10, 11, 12, 3])) == "question"
    long_question = windows([2] + [7] * 5 + [3, 10, 3])
    assert qa.inputs_kind(long_question, windows([2] + [7] * 4 + [3, 10, 3]),
                          max_query_length=4) == "question_cut"


def test_change_detail():
    assert qa.change_detail("merge", " Paris,", "", False) == "no_answer"
    assert qa.change_detail("logits", "", "Paris", False) == "answer"
    assert qa.change_detail("word_bounds", " to", "to", True) == "space"
    assert qa.change_detail("word_bounds", " Paris,", "Paris", True) == "widened"
    assert qa.change_detail("word_bounds", " Paris,", "now", False) == "span"
    assert qa.change_detail("n_best", " to", "now", False) == "span"


def test_agreement_puts_each_difference_down_to_its_first_change():
    paris = pipeline_window({POSITION["paris"]: 5.0}, {POSITION["paris"]: 5.0})
    go = pipeline_window({POSITION["go"]: 5.0}, {POSITION["go"]: 5.0})
    questions = [dict(id=str(i), question="Where?", context=CONTEXT) for i in range(3)]
    records = {qa.PIPELINE: [dict(answer=qa.pipeline_answer([w], CONTEXT), windows=[w])
                             for w in (paris, go, go)],
               qa.OURS: [dict(answer=dict(text=t)) for t in ("Paris", "Go", "now")]}
    rng = np.random.default_rng(0)
    asked = []

    def transformers5_records(indices):
        asked.extend(indices)
        window = our_window([2, 50, 3, 100, 1, 101, 3], [-1, -1, -1, 13, -1, 16, -1],
                            [-1, -1, -1, 16, -1, 17, -1], rng)
        window["start"][3], window["end"][3] = 9.0, 9.0
        return {i: dict(answer=dict(text="now"), windows=[window]) for i in indices}

    report = qa.agreement(records, questions, 2, words, transformers5_records)
    assert asked == [2]  # only the question whose rule-for-rule answer is the pipeline's
    assert (report["same_text"], report["questions"]) == (1, 3)
    kinds = {(k["step"], k["detail"]): k["questions"] for k in report["kinds"]}
    assert kinds == {("word_bounds", "widened"): 1, ("inputs", "tokenization"): 1}
    assert report["checks"] == dict(port_mismatch=0, transformers5_asked=1,
                                    recompute_mismatch=0)


def test_tokenization_check_compares_whole_and_per_word_pieces():
    window = pipeline_window()  # question piece 50, context pieces 100-105
    questions = [dict(id="q", question="Where?", context=CONTEXT)]

    def whole(texts):
        return [[50] if t == "Where?" else list(range(100, 106)) for t in texts]

    def per_word(context):
        return [100, 101, 102, 1, 103, 104, 1, 105]  # a piece before each punctuation mark
    report = qa.tokenization_check([dict(windows=[window])], questions, 2, whole, per_word,
                                   lambda ids: [str(i) for i in ids])
    assert (report["question_same"], report["context_same_whole"],
            report["context_same_per_word"]) == (1, 1, 0)
    assert report["examples"] == {"per_word": dict(
        id="q", pipeline=["101", "102", "103", "104", "105"],
        ours=["101", "102", "1", "103", "104"])}
    assert report["pieces"] == [6, 8]
