"""The official SQuAD evaluation (tasks/question_answering/official_eval.py) against scores computed by hand with the official rules."""

import json

import pytest

from albert_keras.tasks.question_answering import official_eval as ev


def _data(questions, version="v2.0"):
    """questions: (id, [gold texts]) in one paragraph of one article."""
    qas = [{"id": qid, "question": "q?", "is_impossible": not golds,
            "answers": [{"text": text, "answer_start": 0} for text in golds]}
           for qid, golds in questions]
    return {"version": version,
            "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": qas}]}]}


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.mark.parametrize("text,normalized", [
    ("The  Cat!", "cat"),
    ("an apple.", "apple"),
    ("A-B", "ab"),                       # punctuation goes before the words are split
    ("Theatre of the Absurd", "theatre of absurd"),  # whole words only
    ("  Denver\tBroncos\n", "denver broncos"),
    ("the", ""),
    ("Ça, c'est « ça »", "ça cest « ça »"),  # only ASCII punctuation is removed
])
def test_normalization(text, normalized):
    assert ev.normalize_answer(text) == normalized


def test_word_f1():
    # gold {quick, brown, fox}, predicted {quick, fox, jumps}: P = R = 2/3.
    assert ev.f1_v2("the quick brown fox", "quick fox jumps") == pytest.approx(2 / 3)
    assert ev.f1_v2("Santa Clara, California", "Santa Clara") == pytest.approx(0.8)
    # Repeated words count as a multiset: gold {a1, b}, predicted {b, b}: 1 shared.
    assert ev.f1_v2("x y", "y y") == pytest.approx(0.5)
    assert ev.f1_v2("", "") == 1.0 and ev.f1_v2("", "something") == 0.0
    # v1.1 scores 0 whenever no word is shared, even two answers that are both articles.
    assert ev.f1_v1("The", "the") == 0.0 and ev.exact_match("The", "the") == 1


SQUAD2 = [("q1", ["Denver Broncos", "the Denver Broncos"]),  # answered exactly
          ("q2", ["Santa Clara, California"]),               # partly: F1 0.8
          ("q3", []),                                        # unanswerable, ""
          ("q4", []),                                        # unanswerable, answered
          ("q5", ["gold"])]                                  # answerable, ""
PREDICTIONS = {"q1": "Denver Broncos", "q2": "Santa Clara", "q3": "",
               "q4": "Levi's Stadium", "q5": ""}
NA_PROBS = {"q1": 0.1, "q2": 0.3, "q3": 0.9, "q4": 0.6, "q5": 0.7}


def test_squad2_by_hand(tmp_path, capsys):
    data = _write(tmp_path, "dev.json", _data(SQUAD2))
    predictions = _write(tmp_path, "predictions.json", PREDICTIONS)
    assert ev.main([data, predictions]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1",
                            "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total"]
    # exact: q1, q3 right of 5; f1: 1 + 0.8 + 1 of 5; HasAns q1 q2 q5; NoAns q3 q4.
    expected = {"exact": 40.0, "f1": 56.0, "total": 5, "HasAns_exact": 100 / 3,
                "HasAns_f1": 60.0, "HasAns_total": 3, "NoAns_exact": 50.0,
                "NoAns_f1": 50.0, "NoAns_total": 2}
    assert result == pytest.approx(expected)

    # With no-answer scores and a threshold of 0.5, q3, q4 and q5 count as "": q3 and q4
    # become right, q5 stays wrong.
    na = _write(tmp_path, "null_odds.json", NA_PROBS)
    assert ev.main([data, predictions, "--na_prob_file", na, "--na_prob_thresh", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Best thresholds: start at 2 (both unanswerable right); in order of score q1 +1 (3,
    # at 0.1), q2 +0 / +0.8 (f1 3.8 at 0.3), q4 -1 (an answer to an unanswerable one),
    # q5 +0, q3 0.
    assert result == pytest.approx({
        "exact": 60.0, "f1": 76.0, "total": 5, "HasAns_exact": 100 / 3, "HasAns_f1": 60.0,
        "HasAns_total": 3, "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 2,
        "best_exact": 60.0, "best_exact_thresh": 0.1, "best_f1": 76.0,
        "best_f1_thresh": 0.3})
    assert list(result)[-4:] == ["best_exact", "best_exact_thresh", "best_f1",
                                 "best_f1_thresh"]


def test_squad2_gold_that_normalizes_to_nothing_means_no_answer():
    data = _data([("q1", ["The"]), ("q2", ["a", "cat"])])
    result = ev.evaluate_v2(data, {"q1": "", "q2": "the cat"})
    # q1's only gold normalizes to "", so "" matches it; q2 keeps "cat".
    assert result["exact"] == 100.0 and result["f1"] == 100.0
    assert result["HasAns_total"] == 2  # answerable by the data's own answers list


def test_squad11(tmp_path, capsys):
    data = _write(tmp_path, "dev.json", _data(
        [("q1", ["Denver Broncos"]), ("q2", ["the cat", "a black cat"]), ("q3", ["x"])],
        version="1.1"))
    predictions = _write(tmp_path, "p.json", {"q1": "denver broncos.", "q2": "black cat"})
    assert ev.main([data, predictions]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    # q1 exact; q2: "black cat" matches "a black cat" exactly; q3 unanswered counts 0.
    assert list(result) == ["exact_match", "f1"]
    assert result == pytest.approx({"exact_match": 200 / 3, "f1": 200 / 3})
    assert "Unanswered question q3" in captured.err
    assert "\n" not in captured.out.strip()  # v1.1 prints one line
    # The same file under the v2.0 rules demands every prediction.
    assert ev.main([data, predictions, "--squad_version", "2.0"]) == 2
    assert "no prediction for 1 of 3 questions (first: q3)" in capsys.readouterr().err


def test_bad_files(tmp_path, capsys):
    data = _write(tmp_path, "dev.json", _data(SQUAD2))
    predictions = _write(tmp_path, "predictions.json", PREDICTIONS)
    (tmp_path / "broken.json").write_text('{"q1": ')
    assert ev.main([data, str(tmp_path / "broken.json")]) == 2
    assert "broken.json: not valid JSON" in capsys.readouterr().err
    assert ev.main([data, _write(tmp_path, "n.json", {"q1": 3})]) == 2
    assert "the value for q1 is 3" in capsys.readouterr().err
    partial = _write(tmp_path, "na.json", {"q1": 0.5})
    assert ev.main([data, predictions, "--na_prob_file", partial]) == 2
    assert "no no-answer score for 4 questions (first: q2)" in capsys.readouterr().err
    assert ev.main([str(tmp_path / "missing.json"), predictions]) == 2
    assert "SQuAD data not found" in capsys.readouterr().err
    bad = _data(SQUAD2)
    del bad["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["text"]
    assert ev.main([_write(tmp_path, "bad.json", bad), predictions]) == 2
    assert "article 0 (T), paragraph 0, question q2: an answer without 'text'" in \
        capsys.readouterr().err
