"""Question-answering windows and answer extraction: the windows against a plain Python
statement of the layout and the max-context rule, gold spans on the bundled SQuAD 2.0
sample, and extract_answers (graph) against extract_answers_python (the spec)."""

import random

import numpy as np
import pytest
import tensorflow as tf

from albert_keras.tasks.question_answering.squad_files import read_squad
from albert_keras.tasks.question_answering.answers import (AnswerSettings, extract_answers,
                                             extract_answers_python)
from albert_keras.tasks.question_answering.windows import WindowSettings, squad_windows
from albert_keras.tokenizer import AlbertTokenizer
from data_fixtures import VARIED_TEXT, WORDS, tiny_spm_model

SAMPLE = "training/datasets/squad2_sample/squad2-sample.json"


@pytest.fixture(scope="module")
def tokenizer():
    return AlbertTokenizer.from_file(tiny_spm_model())


@pytest.fixture(scope="module")
def sample():
    return read_squad(SAMPLE)


def gold_spans(examples):
    starts = [e.answers[0][1] if e.answers else -1 for e in examples]
    ends = [e.answers[0][1] + len(e.answers[0][0]) if e.answers else -1 for e in examples]
    return starts, ends


def pieces_of(tokenizer, text):
    return tokenizer.tokenize(tf.constant([text])).numpy()[0].tolist()


def piece_spans(tokenizer, text):
    """[(start, end)] of the text's pieces, in code points (tokenize_with_offsets)."""
    _, starts, ends = tokenizer.tokenize_with_offsets(tf.constant([text]))
    return list(zip(starts.to_list()[0], ends.to_list()[0]))


@pytest.mark.parametrize("settings", [WindowSettings(24, 5, 6), WindowSettings(32, 30, 8),
                                      WindowSettings(16, 2, 12)])
def test_windows_follow_the_layout_and_the_max_context_rule(tokenizer, settings):
    rng = random.Random(settings.max_seq_length)
    questions = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
                 for _ in range(8)]
    contexts = [" ".join(rng.choice(WORDS + ["x,", "(y)"]) for _ in range(rng.randint(0, 40)))
                for _ in range(7)] + [VARIED_TEXT[3] + " \u0301 done"]
    windows = squad_windows(tokenizer, questions, contexts, settings)
    ids = windows["features"]["input_ids"].numpy()
    mask = windows["features"]["input_mask"].numpy()
    segments = windows["features"]["segment_ids"].numpy()
    start_char, end_char = windows["start_char"].numpy(), windows["end_char"].numpy()
    window_example = windows["window_example"].numpy()
    window = 0
    for example, (question, context) in enumerate(zip(questions, contexts)):
        query = pieces_of(tokenizer, question)[:settings.max_query_length]
        flat = pieces_of(tokenizer, context)  # the whole text's pieces, as in pretraining
        spans = piece_spans(tokenizer, context)
        capacity = settings.max_seq_length - 3 - len(query)
        stride = min(settings.doc_stride, capacity)
        count = 1 + -(-max(len(flat) - capacity, 0) // stride)
        assert (window_example[window:window + count] == example).all()
        best = {}  # piece -> (score, row, position, start) by the reference's rule
        for k in range(count):
            row, begin = window + k, k * stride
            held = flat[begin:begin + capacity]
            expected = [2] + query + [3] + held + [3]
            assert ids[row][:mask[row].sum()].tolist() == expected
            assert segments[row][:mask[row].sum()].tolist() == \
                [0] * (len(query) + 2) + [1] * (len(held) + 1)
            for i in range(begin, begin + len(held)):
                position = i - begin + len(query) + 2
                start, end = spans[i]
                if start == end:  # a piece of no character is no candidate
                    assert start_char[row, position] == end_char[row, position] == -1
                    continue
                assert end_char[row, position] == end
                score = min(i - begin, begin + len(held) - 1 - i) + 0.01 * len(held)
                if i not in best or score > best[i][0]:
                    best[i] = (score, row, position, start)
        rows = window_example == example
        starts = start_char[rows]
        assert sorted(starts[starts >= 0].tolist()) == sorted(s for s, e in spans if e > s)
        for score, row, position, start in best.values():
            assert start_char[row, position] == start
        window += count
    assert window == len(ids)


def test_gold_spans_of_the_sample_map_to_pieces(tokenizer, sample):
    examples = sample[:120]
    starts, ends = gold_spans(examples)
    settings = WindowSettings(64, 16, 16)
    windows = squad_windows(tokenizer, [e.question for e in examples],
                            [e.context for e in examples], settings, starts, ends)
    window_example = windows["window_example"].numpy()
    start_positions = windows["start_positions"].numpy()
    end_positions = windows["end_positions"].numpy()
    impossible = windows["is_impossible"].numpy()
    end_char = windows["end_char"].numpy()
    exact = windows["gold_exact"].numpy()
    for i, example in enumerate(examples):
        rows = np.flatnonzero(window_example == i)
        holding = rows[impossible[rows] == 0]
        if example.is_impossible:
            assert len(holding) == 0 and not exact[i]
            continue
        # The covering pieces: the first that ends after the start, the last that begins
        # before the end; exact when they start and end where the answer does.
        spans = [(s, e) for s, e in piece_spans(tokenizer, example.context) if e > s]
        first = next(s for s, e in spans if e > starts[i])
        last = [e for s, e in spans if s < ends[i]][-1]
        assert exact[i] == (first == starts[i] and last == ends[i])
        assert len(holding) >= 1
        for row in holding:
            assert end_char[row, end_positions[row]] == last
            assert start_positions[row] <= end_positions[row]
        for row in rows[impossible[rows] == 1]:
            assert start_positions[row] == end_positions[row] == 0
    assert exact.sum() >= 0.95 * sum(not e.is_impossible for e in examples)
    # Over the whole sample: answers that end inside a piece are widened and counted.
    starts, ends = [], []
    for example in sample:
        for text, start in example.answers:
            starts.append(start)
            ends.append(start + len(text))
    everything = squad_windows(tokenizer, ["q"] * len(starts),
                               [e.context for e in sample for _ in e.answers],
                               WindowSettings(384, 128, 64), starts, ends)
    from albert_keras.tasks.question_answering.evaluation import widened_answers
    widened = int((~everything["gold_exact"].numpy()).sum())
    assert widened_answers(sample, tokenizer) == (widened, 1225)  # the fine-tuning log's count
    assert 0 < widened < 0.05 * 1225


def test_a_widened_answer_covers_its_pieces(tokenizer):
    context = "They found the richest gold rushes in the mountains."
    spans = piece_spans(tokenizer, context)
    # An answer from inside one piece of two or more characters to inside another.
    long_pieces = [(s, e) for s, e in spans if e - s >= 2]
    first_start, last_end = long_pieces[1][0], long_pieces[-2][1]
    windows = squad_windows(tokenizer, ["what?"], [context], WindowSettings(64, 16, 16),
                            [first_start + 1], [last_end - 1])
    row = 0
    start_char = windows["start_char"].numpy()[row, windows["start_positions"].numpy()[row]]
    end_char = windows["end_char"].numpy()[row, windows["end_positions"].numpy()[row]]
    assert (start_char, end_char) == (first_start, last_end)
    assert not windows["gold_exact"].numpy()[0]


def test_windows_of_nothing_and_of_empty_text(tokenizer):
    settings = WindowSettings(16, 4, 4)
    none = squad_windows(tokenizer, tf.constant([], tf.string), tf.constant([], tf.string),
                         settings, tf.constant([], tf.int32), tf.constant([], tf.int32))
    assert none["features"]["input_ids"].shape == [0, 16] and none["gold_exact"].shape == [0]
    empty = squad_windows(tokenizer, [""], [""], settings, [-1], [-1])
    assert empty["features"]["input_ids"].numpy()[0, :3].tolist() == [2, 3, 3]
    assert (empty["start_char"].numpy() == -1).all()
    answers = extract_answers(empty, {"start_logits": tf.zeros([1, 16]),
                                      "end_logits": tf.zeros([1, 16])}, [""], AnswerSettings())
    assert answers["text"].numpy().tolist() == [b""] and answers["start"].numpy()[0] == -1
    with pytest.raises(ValueError, match="use at least 12"):
        WindowSettings(10, 4, 8)
    with pytest.raises(ValueError, match="n_best_size"):
        AnswerSettings(n_best_size=0)


def random_logits(rng, shape, ties):
    if ties:  # few distinct values: many equal scores, to check the tie rules
        return rng.integers(-3, 3, size=shape).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32) * 3


@pytest.mark.parametrize("version_2, threshold, ties",
                         [(True, 0.0, False), (True, -2.0, False), (False, 0.0, False),
                          (True, 0.0, True), (False, 0.0, True)])
def test_graph_extraction_equals_the_python_spec(tokenizer, sample, version_2, threshold,
                                                 ties):
    examples = sample[::7][:60]
    contexts = [e.context for e in examples]
    windows = squad_windows(tokenizer, [e.question for e in examples], contexts,
                            WindowSettings(48, 12, 12))
    rng = np.random.default_rng(int(version_2) + 10 * int(ties))
    shape = windows["features"]["input_ids"].shape
    start_logits, end_logits = random_logits(rng, shape, ties), random_logits(rng, shape, ties)
    # [CLS] likelier in some windows than in others, so that some questions go unanswered
    start_logits[:, 0] += rng.uniform(0, 16, size=shape[0]).astype(np.float32)
    end_logits[:, 0] += rng.uniform(0, 16, size=shape[0]).astype(np.float32)
    settings = AnswerSettings(n_best_size=5, max_answer_length=6, version_2=version_2,
                              null_threshold=threshold)
    outputs = {"start_logits": start_logits, "end_logits": end_logits}
    expected = extract_answers_python(windows, outputs, contexts, settings)
    got = extract_answers(windows, outputs, contexts, settings)
    got = {key: value.numpy() for key, value in got.items()}
    answered = 0
    for i, (want, context) in enumerate(zip(expected, contexts)):
        assert got["text"][i].decode() == want["text"] == context[want["start"]:want["end"]]
        assert (got["start"][i], got["end"][i]) == (want["start"], want["end"])
        assert got["score"][i] == pytest.approx(want["score"])
        assert got["null_odds"][i] == pytest.approx(want["null_odds"])
        answered += want["text"] != ""
    assert 0 < answered < len(examples) or not version_2


def test_answers_are_code_point_slices_of_non_ascii_text(tokenizer):
    context = "Le café «Zoë» à Köln: 東京 タワー, naïve 😀 emoji."
    spans = [(s, e) for s, e in piece_spans(tokenizer, context) if e > s]
    windows = squad_windows(tokenizer, ["où?"], [context], WindowSettings(24, 4, 4))
    start_char, end_char = windows["start_char"].numpy(), windows["end_char"].numpy()
    for first, last in [(0, 0), (2, 5), (7, 9), (len(spans) - 3, len(spans) - 1)]:
        want_start, want_end = spans[first][0], spans[last][1]
        logits_start = np.where(start_char == want_start, 10.0, 0.0).astype(np.float32)
        logits_end = np.where(end_char == want_end, 10.0, 0.0).astype(np.float32)
        answers = extract_answers(windows, {"start_logits": logits_start,
                                            "end_logits": logits_end}, [context],
                                  AnswerSettings(max_answer_length=30))
        text = answers["text"].numpy()[0].decode()
        start, end = answers["start"].numpy()[0], answers["end"].numpy()[0]
        assert (start, end) == (want_start, want_end) and context[start:end] == text


@pytest.mark.parametrize("version_2, ties", [(True, False), (False, False), (True, True)])
def test_graph_extraction_of_the_reference_beam_equals_the_python_spec(tokenizer, sample,
                                                                      version_2, ties):
    examples = sample[3::11][:50]
    contexts = [e.context for e in examples]
    windows = squad_windows(tokenizer, [e.question for e in examples], contexts,
                            WindowSettings(40, 10, 10))
    rng = np.random.default_rng(7 + int(ties))
    count, width = windows["features"]["input_ids"].shape
    n, m = 4, 3
    start_index = rng.integers(0, width, size=(count, n)).astype(np.int32)
    # Ends near their starts, so that many candidates count.
    end_index = np.clip(start_index[:, :, None] + rng.integers(-2, 6, size=(count, n, m)),
                        0, width - 1).astype(np.int32)
    outputs = {"start_top_index": start_index, "end_top_index": end_index,
               "start_top_log_probs": -np.abs(random_logits(rng, (count, n), ties)),
               "end_top_log_probs": -np.abs(random_logits(rng, (count, n, m), ties)),
               # every third question leans towards no answer
               "cls_logits": (random_logits(rng, (count,), ties)
                              + 3.0 * (windows["window_example"].numpy() % 3 == 0))}
    settings = AnswerSettings(max_answer_length=5, version_2=version_2, null_threshold=0.5)
    expected = extract_answers_python(windows, outputs, contexts, settings)
    got = {k: v.numpy() for k, v in extract_answers(windows, outputs, contexts,
                                                    settings).items()}
    answered = 0
    for i, want in enumerate(expected):
        assert got["text"][i].decode() == want["text"]
        assert (got["start"][i], got["end"][i]) == (want["start"], want["end"])
        assert got["score"][i] == pytest.approx(want["score"])
        assert got["null_odds"][i] == pytest.approx(want["null_odds"], abs=1e-5)
        answered += want["text"] != ""
    assert 0 < answered < len(examples) or not version_2


def test_cutting_the_padding_changes_no_answer(tokenizer, sample):
    examples = sample[:40]
    contexts = [e.context[:40 + 2 * i] for i, e in enumerate(examples)]
    windows = squad_windows(tokenizer, [e.question for e in examples], contexts,
                            WindowSettings(200, 32, 16))
    rng = np.random.default_rng(3)
    shape = windows["features"]["input_ids"].shape
    outputs = {"start_logits": random_logits(rng, shape, False) + 5.0,  # padding high
               "end_logits": random_logits(rng, shape, False) + 5.0}
    width = int(windows["features"]["input_mask"].numpy().sum(axis=1).max())
    assert width < shape[1]
    settings = AnswerSettings(version_2=False)
    full = extract_answers(windows, outputs, contexts, settings)
    cut = extract_answers(windows, {k: v[:, :width] for k, v in outputs.items()}, contexts,
                          settings)
    assert full["text"].numpy().tolist() == cut["text"].numpy().tolist()
    assert (full["start"].numpy() == cut["start"].numpy()).all()


def test_dataset_batches_windows_with_their_labels_and_shards_by_question(tokenizer, sample):
    from albert_keras.tasks.question_answering.dataset import squad_dataset

    examples = sample[:30]
    settings = WindowSettings(48, 16, 12)
    batches = list(squad_dataset(examples, tokenizer, settings, batch_size=8, training=False))
    windows = squad_windows(tokenizer, [e.question for e in examples],
                            [e.context for e in examples], settings,
                            *zip(*[(e.answers[0][1], e.answers[0][1] + len(e.answers[0][0]))
                                   if e.answers else (-1, -1) for e in examples]))
    for name in ("input_ids", "start_positions", "end_positions", "is_impossible"):
        got = np.concatenate([batch[name].numpy() for batch in batches])
        want = (windows["features"] if name == "input_ids" else windows)[name].numpy()
        assert (got == want).all()
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=2)
    half = squad_dataset(examples, tokenizer, settings, batch_size=8, training=True,
                         input_context=context, seed=1)
    batch = next(iter(half))
    assert batch["input_ids"].shape == [4, 48] and batch["is_impossible"].dtype == tf.float32
