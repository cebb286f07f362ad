"""The CMRC 2018 metric (Chinese reading comprehension), with the official script's rules
and output (cmrc2018_evaluate.py v6, ymcui/cmrc2018):

    python -m training.evaluate_squad DATA_JSON PREDICTIONS_JSON --metric cmrc2018

The rules, as the official script applies them:
- Text is lowercased and stripped. Its "punctuation" is the script's own list (PUNCTUATION
  below; the two-character "……" in it never matches a single character).
- Exact match: the answer and the prediction are equal once those characters are removed.
- F1: both are segmented as the script does (mixed_segmentation: each CJK character of
  U+4E00-U+9FA5 and each punctuation character is a segment; the text between them is
  cut into words by NLTK's word_tokenize with preserve_line=True, which needs no
  downloaded data) with the punctuation removed; the longest common run of segments (not
  a subsequence) gives precision and recall. 0 when nothing is shared.
- Each question scores the best over its gold answers; a question without a prediction
  scores 0 and counts in the total (and in SKIP).
- Output: {"AVERAGE", "F1", "EM"} as "%.3f" strings (percent), "TOTAL", "SKIP", "FILE".
"""

from __future__ import annotations

import collections
import re
import sys

PUNCTUATION = frozenset(
    ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=', '，', '。', '：', '？', '！',
     '“', '”', '；', '’', '《', '》', '……', '·', '、', '「', '」', '（', '）', '－', '～',
     '『', '』'])
_CHINESE = re.compile("[\u4e00-\u9fa5]")


def _words(text: str) -> list:
    from nltk.tokenize import NLTKWordTokenizer  # word_tokenize(text, preserve_line=True)

    return NLTKWordTokenizer().tokenize(text)


def mixed_segmentation(text: str, remove_punctuation: bool = False) -> list:
    segments, run = [], ""
    for char in str(text).lower().strip():
        if remove_punctuation and char in PUNCTUATION:
            continue
        if _CHINESE.search(char) or char in PUNCTUATION:
            if run:
                segments.extend(_words(run))
                run = ""
            segments.append(char)
        else:
            run += char
    if run:
        segments.extend(_words(run))
    return segments


def without_punctuation(text: str) -> str:
    return "".join(c for c in str(text).lower().strip() if c not in PUNCTUATION)


def longest_common_run(a: list, b: list) -> int:
    """The length of the longest run of segments that a and b share."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def f1(answer: str, prediction: str) -> float:
    gold = mixed_segmentation(answer, remove_punctuation=True)
    predicted = mixed_segmentation(prediction, remove_punctuation=True)
    shared = longest_common_run(gold, predicted)
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(answer: str, prediction: str) -> int:
    return int(without_punctuation(answer) == without_punctuation(prediction))


def questions(data):
    """(id, gold answer texts) of SQuAD-style or original CMRC 2018 data."""
    articles = data["data"] if isinstance(data, dict) and "data" in data else data
    for article in articles:
        for paragraph in article.get("paragraphs", [article]):
            for qa in paragraph["qas"]:
                qid = qa["id"] if "id" in qa else qa["query_id"]
                yield qid, [a["text"] if isinstance(a, dict) else a for a in qa["answers"]]


def evaluate(data, predictions: dict, source: str = "the predictions") -> dict:
    """{"f1", "exact_match", "average"} in percent, with "total" and "skip"."""
    f1_sum = em_sum = total = skipped = 0
    for qid, answers in questions(data):
        total += 1
        if qid not in predictions:
            print(f"Unanswered question: {qid}", file=sys.stderr)
            skipped += 1
            continue
        prediction = str(predictions[qid])
        f1_sum += max(f1(answer, prediction) for answer in answers)
        em_sum += max(exact_match(answer, prediction) for answer in answers)
    if not total:
        raise ValueError(f"{source}: the data has no questions")
    scores = {"f1": 100.0 * f1_sum / total, "exact_match": 100.0 * em_sum / total}
    return dict(scores, average=(scores["f1"] + scores["exact_match"]) / 2, total=total,
                skip=skipped)


def official_output(scores: dict, predictions_file: str) -> dict:
    """The official script's JSON."""
    return collections.OrderedDict([
        ("AVERAGE", "%.3f" % scores["average"]), ("F1", "%.3f" % scores["f1"]),
        ("EM", "%.3f" % scores["exact_match"]), ("TOTAL", scores["total"]),
        ("SKIP", scores["skip"]), ("FILE", predictions_file)])


def is_chinese(data, share: float = 0.3) -> bool:
    """Whether the data's contexts are mostly CJK ideographs (then CMRC 2018's
    character-level metric is the one that means something)."""
    cjk = letters = 0
    articles = data["data"] if isinstance(data, dict) and "data" in data else data
    for article in articles:
        for paragraph in article.get("paragraphs", [article]):
            for char in paragraph.get("context", paragraph.get("context_text", ""))[:2000]:
                if not char.isspace():
                    letters += 1
                    cjk += bool(_CHINESE.search(char))
    return letters > 0 and cjk / letters >= share
