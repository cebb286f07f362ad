"""albert_keras.tasks.question_answering.squad_files: the bundled SQuAD 2.0 sample, a v1.1-style file, and every
kind of bad input, as an error naming its place or a counted skip."""

import copy
import json
import os

import pytest

from albert_keras.tasks.question_answering.squad_files import SquadFormatError, read_squad

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "training", "datasets",
                      "squad2_sample", "squad2-sample.json")
CONTEXT = "Super Bowl 50 was played at Levi's Stadium in Santa Clara, California, in 2016."


def _squad(qas=None, context=CONTEXT, version="v2.0"):
    qas = qas if qas is not None else [
        {"id": "q1", "question": "Where was it played?", "is_impossible": False,
         "answers": [{"text": "Levi's Stadium", "answer_start": 28},
                     {"text": "Santa Clara, California", "answer_start": 46}]},
        {"id": "q2", "question": "Who sang?", "is_impossible": True, "answers": [],
         "plausible_answers": [{"text": "Super Bowl", "answer_start": 0}]},
    ]
    return {"version": version, "data": [{"title": "Super_Bowl_50", "paragraphs": [
        {"context": context, "qas": qas}]}]}


def _write(tmp_path, obj, name="squad.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return str(path)


def test_bundled_sample():
    examples = read_squad(SAMPLE)
    assert len(examples) == 781
    assert sum(e.is_impossible for e in examples) == 369
    assert {e.title for e in examples} == {"Southern_California", "Sky_(United_Kingdom)",
                                           "Victoria_(Australia)"}
    for example in examples:
        assert example.is_impossible == (not example.answers)
        for text, start in example.answers:
            assert example.context[start:start + len(text)] == text
    first = examples[0]
    assert first.qid == "5705e26d75f01819005e76d4"
    assert first.answers[0] == ("SoCal", 39)


def test_answers_and_unanswerable(tmp_path):
    examples = read_squad(_write(tmp_path, _squad()))
    assert [e.qid for e in examples] == ["q1", "q2"]
    assert examples[0].answers == (("Levi's Stadium", 28), ("Santa Clara, California", 46))
    assert examples[1].is_impossible and examples[1].answers == ()  # plausible ignored
    # SQuAD 1.1: no is_impossible field, every question answerable.
    v1 = _squad([{"id": 7, "question": "When?", "answers": [{"text": "2016",
                                                             "answer_start": 74}]}],
                version="1.1")
    (example,) = read_squad(_write(tmp_path, v1, "v1.json"))
    assert example.qid == "7" and example.answers == (("2016", 74),)
    # Offsets count code points, as Python indexes strings.
    accented = _squad([{"id": "q", "question": "Which city?",
                        "answers": [{"text": "Zürich", "answer_start": 9}]}],
                      context="Café in  Zürich 🎉.")
    assert read_squad(_write(tmp_path, accented, "a.json"))[0].answers == (("Zürich", 9),)


BAD = [
    ("answer_start off", lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]
     .update(answer_start=27),
     r"question q1, answer 0: the context at answer_start 27 is \" Levi's Stadiu\", not "
     r"the answer text \"Levi's Stadium\""),
    ("empty question", lambda d: d["data"][0]["paragraphs"][0]["qas"][1]
     .update(question="  "), r"question q2: 'question' is empty"),
    ("no id", lambda d: d["data"][0]["paragraphs"][0]["qas"][1].pop("id"),
     r": a question without an 'id'"),
    ("impossible with answers", lambda d: d["data"][0]["paragraphs"][0]["qas"][0]
     .update(is_impossible=True), r"question q1: marked is_impossible but has answers"),
    ("no answers", lambda d: d["data"][0]["paragraphs"][0]["qas"][1]
     .update(is_impossible=False), r"question q2: no answers and not marked is_impossible"),
    ("answer without text", lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][1]
     .pop("text"), r"question q1, answer 1: 'text' must be a string"),
    ("duplicate id", lambda d: d["data"][0]["paragraphs"][0]["qas"][1].update(id="q1"),
     r"question q1: the id is already used at .*paragraph 0"),
]


@pytest.mark.parametrize("name,damage,message", BAD, ids=[b[0] for b in BAD])
def test_bad_question_is_an_error_or_a_counted_skip(tmp_path, name, damage, message):
    data = copy.deepcopy(_squad())
    damage(data)
    path = _write(tmp_path, data)
    with pytest.raises(SquadFormatError,
                       match=r"squad.json: article 0 \(Super_Bowl_50\), paragraph 0.*"
                       + message):
        read_squad(path)
    skipped = []
    examples = read_squad(path, skip_invalid=True, skipped=skipped)
    assert len(examples) == 1 and len(skipped) == 1
    assert "squad.json: article 0" in skipped[0]


def test_bad_files(tmp_path):
    with pytest.raises(SquadFormatError, match=r"broken.json: not valid JSON: .* line 2"):
        read_squad(_write(tmp_path, '{"data": [\n  {"title": }', "broken.json"))
    with pytest.raises(SquadFormatError, match="SQuAD file not found"):
        read_squad(str(tmp_path / "missing.json"))
    with pytest.raises(SquadFormatError, match="'data' must be a list"):
        read_squad(_write(tmp_path, {"version": "v2.0"}, "nodata.json"))
    (tmp_path / "latin1.json").write_bytes(b'{"data": "caf\xe9"}')
    with pytest.raises(SquadFormatError, match=r"latin1.json: not valid UTF-8 at byte 13"):
        read_squad(str(tmp_path / "latin1.json"))
    empty_context = _squad(context=" ")
    path = _write(tmp_path, empty_context, "empty.json")
    with pytest.raises(SquadFormatError, match=r"paragraph 0: 'context' is empty"):
        read_squad(path)
    skipped = []
    assert read_squad(path, skip_invalid=True, skipped=skipped) == []
    assert len(skipped) == 1
