"""SQuAD exact match and F1, with the official evaluation scripts' rules and output.

    python -m training.evaluate_squad DATA_JSON PREDICTIONS_JSON \
        [--na_prob_file NULL_ODDS_JSON] [--na_prob_thresh 1.0] [--squad_version auto]
        [--metric auto|squad|cmrc2018]

--metric cmrc2018 (or auto, for data whose contexts are mostly CJK ideographs) scores
with CMRC 2018's character-level rules and prints its official script's JSON
(albert_keras/tasks/question_answering/cmrc2018_eval.py).

PREDICTIONS_JSON maps question id -> answer text ("" for no answer). For a SQuAD 2.0
file it prints the JSON of the official v2.0 script: exact, f1, total, HasAns_* and
NoAns_* and, with --na_prob_file (id -> no-answer score), best_exact / best_f1 and the
thresholds that reach them. For a v1.1 file ("version": "1.1") it prints the official
v1.1 script's {"exact_match", "f1"}. --squad_version 1.1 or 2.0 chooses the rules.

The rules, as the official scripts apply them:
- An answer is compared after normalization: lowercase, punctuation removed, the
  articles a/an/the removed, whitespace collapsed. Exact match: the normalized strings
  are equal. F1: over the normalized words, as multisets.
- Each question scores the best over its gold answers.
- v2.0: gold answers that normalize to nothing are dropped; a question left without
  any (an unanswerable one) has the single gold answer "", which only "" (or text that
  normalizes to nothing) matches, for exact match and F1 alike. A question whose
  no-answer score exceeds --na_prob_thresh counts as answered with "" (1 if
  unanswerable, else 0). Every question of the data needs a prediction.
- v1.1: a question without a prediction scores 0 and counts in the total (a warning
  names it); F1 is 0 whenever no word is shared, even when both sides normalize to
  nothing.
Warnings go to stderr, so stdout stays the JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
import sys

from albert_keras.tasks.question_answering import cmrc2018_eval
from albert_keras.tasks.question_answering.squad_files import SquadFormatError, load_json

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, then the articles a/an/the, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def _shared_words(gold_words: list, predicted_words: list) -> int:
    return sum((collections.Counter(gold_words) & collections.Counter(predicted_words)).values())


def _harmonic_f1(shared: int, gold_count: int, predicted_count: int) -> float:
    precision, recall = shared / predicted_count, shared / gold_count
    return 2 * precision * recall / (precision + recall)


def f1_v2(gold: str, prediction: str) -> float:
    """Word F1; when either side has no words, 1 if both have none, else 0."""
    gold_words = normalize_answer(gold).split()
    predicted_words = normalize_answer(prediction).split()
    if not gold_words or not predicted_words:
        return float(gold_words == predicted_words)
    shared = _shared_words(gold_words, predicted_words)
    return _harmonic_f1(shared, len(gold_words), len(predicted_words)) if shared else 0.0


def f1_v1(gold: str, prediction: str) -> float:
    """Word F1 as v1.1 computes it: 0 whenever no word is shared."""
    gold_words = normalize_answer(gold).split()
    predicted_words = normalize_answer(prediction).split()
    shared = _shared_words(gold_words, predicted_words)
    return _harmonic_f1(shared, len(gold_words), len(predicted_words)) if shared else 0.0


def questions(data: dict, source: str = "the data"):
    """Yields (id, gold answer texts) of every question, in file order."""
    try:
        articles = data["data"]
    except (KeyError, TypeError):
        raise SquadFormatError(f"{source}: no top-level 'data' list") from None
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                where = f"{source}: article {a} ({article.get('title', '?')}), paragraph {p}"
                if "id" not in qa:
                    raise SquadFormatError(f"{where}, question {q}: no 'id'")
                try:
                    golds = [str(answer["text"]) for answer in qa.get("answers", [])]
                except (KeyError, TypeError):
                    raise SquadFormatError(f"{where}, question {qa['id']}: an answer "
                                         "without 'text'") from None
                yield qa["id"], golds


def _percent(values) -> float:
    values = list(values)
    return 100.0 * sum(values) / len(values)


def evaluate_v2(data: dict, predictions: dict, na_probs: dict | None = None,
                na_prob_thresh: float = 1.0, source: str = "the data") -> dict:
    """The official v2.0 script's output dict, in its key order."""
    golds = dict(questions(data, source))
    missing = [qid for qid in golds if qid not in predictions]
    if missing:
        raise SquadFormatError(f"no prediction for {len(missing)} of {len(golds)} questions "
                             f"(first: {missing[0]})")
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    lacking = [qid for qid in golds if qid not in probs]
    if lacking:
        raise SquadFormatError(f"no no-answer score for {len(lacking)} questions "
                             f"(first: {lacking[0]})")
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact_raw, f1_raw = {}, {}
    for qid, answers in golds.items():
        kept = [text for text in answers if normalize_answer(text)] or [""]
        exact_raw[qid] = max(exact_match(text, predictions[qid]) for text in kept)
        f1_raw[qid] = max(f1_v2(text, predictions[qid]) for text in kept)

    def thresholded(raw):
        return {qid: float(not has_answer[qid]) if probs[qid] > na_prob_thresh else score
                for qid, score in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)
    result = {"exact": _percent(exact.values()), "f1": _percent(f1.values()),
              "total": len(exact)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid in golds if has_answer[qid] == wanted]
        if ids:
            result[f"{prefix}_exact"] = _percent(exact[qid] for qid in ids)
            result[f"{prefix}_f1"] = _percent(f1[qid] for qid in ids)
            result[f"{prefix}_total"] = len(ids)
    if na_probs is not None:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            best, threshold = best_threshold(raw, predictions, probs, has_answer)
            result[f"best_{name}"] = best
            result[f"best_{name}_thresh"] = threshold
    return result


def best_threshold(raw: dict, predictions: dict, probs: dict, has_answer: dict):
    """The no-answer threshold that maximizes the score, as the official script finds it:
    start from answering nothing (each unanswerable question scores 1), then admit the
    questions' own answers in increasing order of no-answer score, keeping the first
    highest total. Returns (score in percent, the threshold)."""
    total = sum(1 for answerable in has_answer.values() if not answerable)
    best, threshold = total, 0.0
    for qid in sorted(probs, key=lambda qid: probs[qid]):
        if qid not in raw:
            continue
        if has_answer[qid]:
            total += raw[qid]
        elif predictions[qid]:
            total -= 1  # an answer given to an unanswerable question
        if total > best:
            best, threshold = total, probs[qid]
    return 100.0 * best / len(raw), threshold


def evaluate_v1(data: dict, predictions: dict, source: str = "the data") -> dict:
    """The official v1.1 script's {"exact_match", "f1"}."""
    exact = f1 = total = 0
    for qid, answers in questions(data, source):
        total += 1
        if qid not in predictions:
            print(f"Unanswered question {qid} will receive score 0.", file=sys.stderr)
            continue
        if not answers:
            raise SquadFormatError(f"{source}: question {qid} has no answer; v1.1 rules need "
                                 "one (use --squad_version 2.0)")
        exact += max(exact_match(text, predictions[qid]) for text in answers)
        f1 += max(f1_v1(text, predictions[qid]) for text in answers)
    if not total:
        raise SquadFormatError(f"{source}: no questions")
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def _string_map(obj, path: str, value_type) -> dict:
    if not isinstance(obj, dict):
        raise SquadFormatError(f"{path}: expected a JSON object of question id -> value")
    for qid, value in obj.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise SquadFormatError(f"{path}: the value for {qid} is {value!r}")
    return obj


def evaluate_files(data_path: str, predictions_path: str, na_prob_path: str | None = None,
                   na_prob_thresh: float = 1.0, squad_version: str = "auto",
                   metric: str = "squad") -> dict:
    data = load_json(data_path, "SQuAD data")
    predictions = _string_map(load_json(predictions_path, "predictions"),
                              predictions_path, str)
    if metric == "auto":
        metric = "cmrc2018" if cmrc2018_eval.is_chinese(data) else "squad"
    if metric == "cmrc2018":
        if na_prob_path:
            raise SquadFormatError("--na_prob_file applies to SQuAD 2.0 only")
        return cmrc2018_eval.official_output(
            cmrc2018_eval.evaluate(data, predictions, data_path), predictions_path)
    if squad_version == "auto":
        squad_version = "1.1" if isinstance(data, dict) and data.get("version") == "1.1" \
            else "2.0"
    if squad_version == "1.1":
        if na_prob_path:
            raise SquadFormatError("--na_prob_file applies to SQuAD 2.0 only")
        return evaluate_v1(data, predictions, data_path)
    na_probs = None
    if na_prob_path:
        na_probs = _string_map(load_json(na_prob_path, "no-answer scores"), na_prob_path,
                               (int, float))
    return evaluate_v2(data, predictions, na_probs, na_prob_thresh, data_path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate_squad", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_json")
    parser.add_argument("predictions_json")
    parser.add_argument("--na_prob_file", default=None,
                        help="question id -> no-answer score (null_odds.json)")
    parser.add_argument("--na_prob_thresh", type=float, default=1.0,
                        help="a no-answer score above this counts as answering \"\"")
    parser.add_argument("--squad_version", choices=("auto", "1.1", "2.0"), default="auto")
    parser.add_argument("--metric", choices=("auto", "squad", "cmrc2018"), default="auto",
                        help="squad: the official SQuAD scripts (words); cmrc2018: CMRC "
                             "2018's character-level EM and F1; auto: cmrc2018 for data "
                             "whose contexts are mostly CJK ideographs")
    args = parser.parse_args(argv)
    try:
        result = evaluate_files(args.data_json, args.predictions_json, args.na_prob_file,
                                args.na_prob_thresh, args.squad_version, args.metric)
    except SquadFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    indent = None if "exact_match" in result or "AVERAGE" in result else 2  # the scripts' layouts
    print(json.dumps(result, indent=indent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
