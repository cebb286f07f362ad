"""Reading SQuAD 1.1 / 2.0 JSON (the official format) into checked examples.

Each question becomes a SquadExample: its id, question, context, gold answers as
(text, character start) pairs and is_impossible (SQuAD 2.0; "plausible_answers" are
ignored). Offsets are Python string indices (Unicode code points) into the context,
as the official files count them.

Checked, with an error naming the file, the article (index and title), the paragraph
and the question id: the JSON itself, every required field and its type, an empty
question or context, an answer whose text is not the context at its answer_start, a
question that is neither answerable nor marked impossible (or marked impossible with
answers), and an id used twice. With skip_invalid=True a bad question (or a paragraph
without a usable context) is left out and its place recorded in `skipped` instead.
"""

from __future__ import annotations

import dataclasses
import json


class SquadFormatError(ValueError):
    """Malformed SQuAD data; the message names the file, article, paragraph, question."""


@dataclasses.dataclass(frozen=True)
class SquadExample:
    qid: str
    question: str
    context: str
    answers: tuple  # ((text, start), ...) in file order; () when is_impossible
    is_impossible: bool
    title: str = ""


def load_json(path: str, what: str = "SQuAD file"):
    """A JSON file's content; errors name `what` and the path, or the line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SquadFormatError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as error:
        raise SquadFormatError(f"{path}: not valid UTF-8 at byte {error.start}") from None
    except json.JSONDecodeError as error:
        raise SquadFormatError(f"{path}: not valid JSON: {error.msg} at line {error.lineno}, "
                               f"column {error.colno}") from None


def _text(mapping, field: str, where: str) -> str:
    value = mapping.get(field) if isinstance(mapping, dict) else None
    if not isinstance(value, str):
        raise SquadFormatError(f"{where}: '{field}' must be a string, got {value!r:.60}")
    if not value.strip():
        raise SquadFormatError(f"{where}: '{field}' is empty")
    return value


def _list(mapping, field: str, where: str) -> list:
    value = mapping.get(field) if isinstance(mapping, dict) else None
    if not isinstance(value, list):
        raise SquadFormatError(f"{where}: '{field}' must be a list, got {value!r:.60}")
    return value


def _example(qa, context: str, title: str, where: str) -> SquadExample:
    qid = qa.get("id") if isinstance(qa, dict) else None
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
        raise SquadFormatError(f"{where}: a question without an 'id'")
    where = f"{where}, question {qid}"
    question = _text(qa, "question", where)
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise SquadFormatError(f"{where}: 'is_impossible' must be true or false")
    answers = []
    for a, answer in enumerate(_list(qa, "answers", where)):
        text = _text(answer, "text", f"{where}, answer {a}")
        start = answer.get("answer_start")
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise SquadFormatError(f"{where}, answer {a}: 'answer_start' must be a "
                                   f"non-negative integer, got {start!r}")
        found = context[start:start + len(text)]
        if found != text:
            raise SquadFormatError(f"{where}, answer {a}: the context at answer_start {start} "
                                   f"is {found!r}, not the answer text {text!r}")
        answers.append((text, start))
    if impossible and answers:
        raise SquadFormatError(f"{where}: marked is_impossible but has answers")
    if not impossible and not answers:
        raise SquadFormatError(f"{where}: no answers and not marked is_impossible")
    return SquadExample(str(qid), question, context, tuple(answers), impossible, title)


def _skip_or_raise(error: SquadFormatError, skip_invalid: bool, skipped: list | None):
    if not skip_invalid:
        raise error
    if skipped is not None:
        skipped.append(str(error))


def read_squad(path: str, skip_invalid: bool = False, skipped: list | None = None) -> list:
    """The file's questions as SquadExamples, in file order (module docstring)."""
    return squad_examples(load_json(path), path, skip_invalid, skipped)


def squad_examples(data, path: str, skip_invalid: bool = False,
                   skipped: list | None = None) -> list:
    """`read_squad` on a file's content already loaded (errors name `path`)."""
    articles = _list(data, "data", path)
    examples, seen = [], {}
    for a, article in enumerate(articles):
        title = article.get("title", "") if isinstance(article, dict) else ""
        article_where = f"{path}: article {a} ({title or 'untitled'})"
        for p, paragraph in enumerate(_list(article, "paragraphs", article_where)):
            where = f"{article_where}, paragraph {p}"
            try:
                context = _text(paragraph, "context", where)
                questions = _list(paragraph, "qas", where)
            except SquadFormatError as error:
                _skip_or_raise(error, skip_invalid, skipped)
                continue
            for qa in questions:
                try:
                    example = _example(qa, context, title, where)
                    if example.qid in seen:
                        raise SquadFormatError(f"{where}, question {example.qid}: the id is "
                                               f"already used at {seen[example.qid]}")
                except SquadFormatError as error:
                    _skip_or_raise(error, skip_invalid, skipped)
                    continue
                seen[example.qid] = where
                examples.append(example)
    return examples
