"""The pure helpers of benchmarks/question_answering.py and benchmarks/qa_agreement.py:
the timed questions, the port of transformers 4.57's question-answering postprocess, the
chain of changes from its answer to ours, the classification of differences and the
tokenization check, on hand-made windows (no model runs)."""

import re

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.tasks.question_answering.answers import AnswerSettings, extract_answers_python
from albert_keras.tasks.window_batches import best_windows as graph_best_windows
from benchmarks import qa_agreement as ag
from benchmarks import question_answering as qa

CONTEXT = "Go to Paris, now."
# What the pipeline's fast ALBERT tokenizer gives for the context, per piece: its
# offsets (a "\u2581" piece's take in the space before it) and its whitespace word
# ("Go", " to", " Paris,", " now."), pieces "\u2581go" "\u2581to" "\u2581paris" ","
# "\u2581now" ".".
PIECES = [((0, 2), (0, 2)), ((2, 5), (2, 5)), ((5, 11), (5, 12)), ((11, 12), (5, 12)),
          ((12, 16), (12, 17)), ((16, 17), (12, 17))]
POSITION = {"go": 3, "to": 4, "paris": 5, "comma": 6, "now": 7, "dot": 8}  # in the window
SPACE_ID = 9  # the lone "\u2581" piece
# The same context where the vocabulary has no "\u2581go": a lone "\u2581" begins the
# text, and the fast tokenizer gives it the offsets of the first character.
LONE_PIECES = [((0, 1), (0, 2)), ((0, 2), (0, 2))] + PIECES[1:]


def pipeline_window(start_at=(), end_at=(), cls=-5.0, pieces=PIECES, input_ids=None):
    """[CLS] one question piece [SEP] the context pieces [SEP], logits 0 except
    `start_at`/`end_at` {position: logit} and [CLS]."""
    n = 3 + len(pieces) + 1
    start, end = np.zeros(n), np.zeros(n)
    start[0] = end[0] = cls
    for position, value in dict(start_at).items():
        start[position] = value
    for position, value in dict(end_at).items():
        end[position] = value
    sequence_ids = [None, 0, None] + [1] * len(pieces) + [None]
    offsets = [[0, 0], [0, 5], [0, 0]] + [list(o) for o, _ in pieces] + [[0, 0]]
    spans = [None, [0, 5], None] + [list(w) for _, w in pieces] + [None]
    context_ids = list(range(100, 100 + len(pieces)))
    return dict(input_ids=input_ids or [2, 50, 3] + context_ids + [3],
                start=start.tolist(), end=end.tolist(),
                p_mask=[0, 1, 1] + [0] * len(pieces) + [1], offsets=offsets,
                sequence_ids=sequence_ids, words=spans)


def windows_for_ladder(*windows):
    return ag.pipeline_windows_for_ladder(list(windows), CONTEXT, stride=2, space_id=SPACE_ID)


def ladder_texts(window):
    return [ag.ladder_answer(windows_for_ladder(window), CONTEXT, state)["text"]
            for state in range(1, 6)]


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
    found = ag.pipeline_answer([window], CONTEXT)
    assert found["text"] == " Paris," and (found["start"], found["end"]) == (5, 12)


def test_pipeline_port_sums_spans_that_widen_to_the_same_text():
    # "now" is the best single span (logits 5 + 5), but the spans "Paris" and "Paris,"
    # (4.8 + 4.8 each) both widen to " Paris,": summed, they win.
    window = pipeline_window({POSITION["paris"]: 4.8, POSITION["now"]: 5.0},
                             {POSITION["paris"]: 4.8, POSITION["comma"]: 4.8,
                              POSITION["now"]: 5.0})
    assert ag.pipeline_answer([window], CONTEXT)["text"] == " Paris,"
    assert ag.ladder_answer(windows_for_ladder(window), CONTEXT, 1)["text"] == " now."


def test_pipeline_port_answers_nothing_when_cls_wins():
    window = pipeline_window({POSITION["to"]: 1.0}, {POSITION["to"]: 1.0}, cls=3.0)
    assert ag.pipeline_answer([window], CONTEXT)["text"] == ""
    assert ladder_texts(window) == [""] * 5


def test_piece_bounds_skip_the_space_before_a_piece():
    ids = [2] + list(range(100, 106))
    offsets = [[0, 0]] + [list(o) for o, _ in PIECES]  # [CLS], then the context
    starts, ends = ag.piece_bounds(ids, offsets, CONTEXT, SPACE_ID)
    assert starts == [-1, 0, 3, 6, 11, 13, 16]
    assert ends == [-1, 2, 5, 11, 12, 16, 17]
    assert [CONTEXT[s:e] for s, e in zip(starts[1:], ends[1:])] == [
        "Go", "to", "Paris", ",", "now", "."]


def test_piece_bounds_give_a_lone_space_piece_no_characters():
    # "x (y) z" as the fast tokenizer cuts it: "\u2581" "x" "\u2581" "(" "y" ")" "\u2581z".
    # The first lone "\u2581" has the offsets of "x", the second those of the space.
    context = "x (y) z"
    ids = [SPACE_ID, 100, SPACE_ID, 101, 102, 103, 104]
    offsets = [[0, 1], [0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 7]]
    assert ag.piece_bounds(ids, offsets, context, SPACE_ID) == (
        [-1, 0, -1, 2, 3, 4, 6], [-1, 1, -1, 3, 4, 5, 7])


def test_ladder_answers_exactly_the_pieces_where_the_pipeline_widens():
    one_piece = pipeline_window({POSITION["paris"]: 5.0}, {POSITION["paris"]: 5.0})
    assert ladder_texts(one_piece) == [" Paris,", "Paris", "Paris", "Paris", "Paris"]
    # A span that ends at "," : the pipeline's text only adds the space before it.
    with_comma = pipeline_window({POSITION["paris"]: 5.0}, {POSITION["comma"]: 5.0})
    assert ladder_texts(with_comma) == [" Paris,", "Paris,", "Paris,", "Paris,", "Paris,"]


def test_ladder_piece_bounds_rule_out_a_lone_space_piece():
    # The pipeline's best span starts at the lone "\u2581" that begins the text; ours
    # cannot start there and takes the first of the equal starts after it.
    ids = [2, 50, 3, SPACE_ID] + list(range(100, 106)) + [3]
    window = pipeline_window({3: 5.0}, {6: 5.0}, pieces=LONE_PIECES, input_ids=ids)
    record = dict(answer=ag.pipeline_answer([window], CONTEXT), windows=[window])
    assert record["answer"]["text"] == "Go to Paris,"
    result = ag.classify(record, "Go to Paris", CONTEXT, 2, SPACE_ID)
    assert result["texts"]["merge"] == "Go to Paris,"
    assert result["texts"]["piece_bounds"] == "Go to Paris"
    assert (result["step"], result["detail"]) == ("piece_bounds", "span")


def test_context_starts_follow_the_overlap_and_best_windows_match_the_graph():
    first = dict(input_ids=[2, 9, 3, 10, 11, 12, 13, 3], sequence_ids=[None, 0, None] + [1] * 4
                 + [None])
    second = dict(input_ids=[2, 9, 3, 12, 13, 14, 3], sequence_ids=[None, 0, None] + [1] * 3
                  + [None])
    assert ag.context_starts([first, second], stride=2) == [0, 2]
    with pytest.raises(ValueError):
        ag.context_starts([first, dict(second, input_ids=[2, 9, 3, 99, 13, 14, 3])], 2)
    for total, capacity, stride in ((10, 4, 2), (13, 6, 3), (5, 8, 4), (17, 7, 2)):
        count = 1 + -(-max(total - capacity, 0) // stride)
        starts = [k * stride for k in range(count)]
        lengths = [min(capacity, total - s) for s in starts]
        pieces = tf.range(total)
        expected = graph_best_windows(pieces, tf.fill([total], total), tf.fill([total], count),
                                      capacity, stride).numpy().tolist()
        assert ag.best_windows(starts, lengths, total) == expected


def our_window(ids, start_char, end_char, rng):
    n = len(ids)
    return dict(input_ids=ids, start=rng.normal(size=n).tolist(),
                end=rng.normal(size=n).tolist(), start_char=start_char, end_char=end_char)


@pytest.mark.parametrize("seed", range(20))
def test_ladder_with_all_changes_is_our_extraction(seed):
    """ladder_answer's last state on our windows is extract_answers_python."""
    rng = np.random.default_rng(seed)
    context = "Go to Paris, now. " * 3
    spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]", context)]  # one per piece
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
    found = ag.ladder_answer(ag.our_windows_for_ladder(windows), context, 5, n_best=3,
                             max_answer_len=4)
    assert (found["text"], found["start"]) == (expected["text"], expected["start"])


def test_inputs_kind():
    def windows(*ids):
        return [dict(input_ids=i) for i in ids]
    base = windows([2, 7, 3, 10, 11, 12, 3])
    assert ag.inputs_kind(base, base) == "same"
    assert ag.inputs_kind(base, windows([2, 7, 3, 10, 5, 11, 12, 3])) == "tokenization"
    assert ag.inputs_kind(base, windows([2, 7, 3, 10, 11, 3], [2, 7, 3, 11, 12, 3])) == "windows"
    assert ag.inputs_kind(base, windows([2, 7, 8, 3, 10, 11, 12, 3])) == "question"
    long_question = windows([2] + [7] * 5 + [3, 10, 3])
    assert ag.inputs_kind(long_question, windows([2] + [7] * 4 + [3, 10, 3]),
                          max_query_length=4) == "question_cut"


def test_change_detail():
    assert ag.change_detail("merge", " Paris,", "", False) == "no_answer"
    assert ag.change_detail("logits", "", "Paris", False) == "answer"
    assert ag.change_detail("piece_bounds", " Paris,", "Paris,", True) == "space"
    assert ag.change_detail("piece_bounds", " Paris,", "Paris", True) == "widened"
    assert ag.change_detail("piece_bounds", "Go to Paris,", "Go to Paris", False) == "span"
    # Only piece_bounds changes where the text comes from, not which span wins.
    assert ag.change_detail("n_best", " to", "to", True) == "span"
    for step, detail in ag.DETAILS:
        assert step in dict(ag.LADDER)


def test_agreement_puts_each_difference_down_to_its_first_change(capsys):
    paris = pipeline_window({POSITION["paris"]: 5.0}, {POSITION["paris"]: 5.0})
    go = pipeline_window({POSITION["go"]: 5.0}, {POSITION["go"]: 5.0})
    questions = [dict(id=str(i), question="Where?", context=CONTEXT) for i in range(3)]
    records = {ag.PIPELINE: [dict(answer=ag.pipeline_answer([w], CONTEXT), windows=[w])
                             for w in (paris, go, go)],
               ag.OURS: [dict(answer=dict(text=t)) for t in ("Paris", "Go", "now")]}
    rng = np.random.default_rng(0)
    asked = []

    def transformers5_records(indices):
        asked.extend(indices)
        window = our_window([2, 50, 3, 100, 1, 101, 3], [-1, -1, -1, 13, -1, 16, -1],
                            [-1, -1, -1, 16, -1, 17, -1], rng)
        window["start"][3], window["end"][3] = 9.0, 9.0
        return {i: dict(answer=dict(text="now"), windows=[window]) for i in indices}

    report = ag.agreement(records, questions, 2, SPACE_ID, transformers5_records)
    assert asked == [2]  # only the question whose rule-for-rule answer is the pipeline's
    assert (report["same_text"], report["questions"]) == (1, 3)
    kinds = {(k["step"], k["detail"]): k["questions"] for k in report["kinds"]}
    assert kinds == {("piece_bounds", "widened"): 1, ("inputs", "tokenization"): 1}
    assert report["kinds"][0]["explanation"] == ag.DETAILS[("piece_bounds", "widened")]
    assert report["ladder_changes"]["piece_bounds"] == 1  # " Paris," -> "Paris"
    assert report["checks"] == dict(port_mismatch=0, transformers5_asked=1,
                                    recompute_mismatch=0)
    ag.print_agreement(report)
    printed = capsys.readouterr().out
    assert '| piece_bounds | the same span; the pipeline widens it' in printed
    assert '| 1 | 0: Where? | " Paris," | "Paris" | "Paris" |' in printed


def test_tokenization_check_compares_our_whole_text_pieces_and_spans(capsys):
    window = pipeline_window()  # question piece 50, context pieces 100-105
    lone = pipeline_window(pieces=LONE_PIECES,
                           input_ids=[2, 50, 3, SPACE_ID] + list(range(100, 106)) + [3])
    questions = [dict(id=q, question="Where?", context=CONTEXT) for q in "abcd"]
    starts, ends = [0, 3, 6, 11, 13, 16], [2, 5, 11, 12, 16, 17]  # the pipeline's, spaces cut
    contexts = [(list(range(100, 106)), starts, ends),  # the pipeline's pieces and spans
                ([100, 101, 102, 1, 103, 104, 105], starts + [17], ends + [17]),  # other pieces
                (list(range(100, 106)), starts[:3] + [10] + starts[4:], ends),  # "s,"
                # A lone "\u2581" begins the text: ours has no characters, as the
                # pipeline's offsets with its id ruled out.
                ([SPACE_ID] + list(range(100, 106)), [0] + starts, [0] + ends)]
    ours = dict(tokenize=lambda texts: [[50] for _ in texts],
                with_offsets=lambda texts: contexts[:len(texts)],
                piece_names=lambda ids: [str(i) for i in ids], space_id=SPACE_ID)
    records = [dict(windows=[w]) for w in (window, window, window, lone)]
    report = ag.tokenization_check(records, questions, 2, ours)
    assert (report["questions"], report["question_same"], report["context_same"],
            report["context_same_spans"]) == (4, 4, 3, 2)
    assert report["examples"] == {
        "pieces": dict(id="b", pipeline=["101", "102", "103", "104", "105"],
                       ours=["101", "102", "1", "103", "104"]),
        "spans": dict(id="c", position=3, piece="103", pipeline="[11, 12) ','",
                      ours="[10, 12) 's,'")}
    ag.print_agreement(dict(questions=4, same_text=0, same_stripped=0, both_no_answer=0,
                            no_answer={}, pipeline_leading_space=0, tokenization=report,
                            checks=dict(port_mismatch=0, transformers5_asked=0,
                                        recompute_mismatch=0),
                            kinds=[], ladder_changes={}))
    printed = capsys.readouterr().out
    assert "its context pieces for 3 of 4 contexts" in printed
    assert "in 2 of those 3, the piece bounds" in printed
    assert "first difference (spans), c, piece 3 '103': pipeline [11, 12) ','" in printed
