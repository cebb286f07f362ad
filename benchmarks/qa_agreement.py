"""How often transformers 4.57's question-answering pipeline and our `answer` signature
give the same answer, and why they differ (benchmarks/question_answering.py runs both
and dumps what they computed; everything here works on those dumps, no model runs):

- the pipeline's postprocess, ported to run on the windows, offsets and logits its
  worker recorded (`pipeline_answer`);
- the chain of single rule changes that turns its answer into ours (LADDER,
  `ladder_answer`), and each difference put down to the first change after which the
  answer is no longer the pipeline's (`classify`, `settle`, `agreement`);
- the pipeline's pieces against our tokenizer's (`tokenization_check`);
- the agreement part of the report (`print_agreement`).
"""

from __future__ import annotations

import json

import numpy as np

OURS = "ours"
PIPELINE = "transformers-4.57-pipeline"
TRANSFORMERS5 = "transformers-5+our-extraction"
CONTENDERS = (OURS, PIPELINE, TRANSFORMERS5)

# The chain from the pipeline's answer to ours, one change at a time (`ladder_answer`
# computes states 1-5 on the pipeline's own windows and logits; "inputs" swaps in our
# windows, torch logits: transformers-5+our-extraction; "numerics" swaps PyTorch for
# TensorFlow: ours). A difference is put down to the first change after which the
# answer text is no longer the pipeline's.
LADDER = (
    ("port", "the pipeline's postprocess re-run on its own windows and logits "
             "(a check: it must change nothing)"),
    ("merge", "no summing of the scores of candidates with the same text: the pipeline "
              "adds up the probabilities of its 12 best spans per window that widen to "
              "the same text (case-insensitively), across windows too"),
    ("piece_bounds", "spans start and end at any piece with characters (not at a lone "
                     "\u2581 piece) and answer exactly those pieces' characters, without "
                     "the space before the first (tasks/question_answering/windows.py); the pipeline "
                     "widens the span to whole whitespace-delimited words, its offsets "
                     "taking in the space before a word"),
    ("n_best", "only the 20 highest start and the 20 highest end logits of a window "
               "(over all its positions, question and [CLS] included) make spans"),
    ("max_context", "a span starts only in the window that reads its first piece best"),
    ("logits", "candidates and the no-answer score compared as logit sums across windows "
               "(the no-answer decision: least [CLS] start+end logit minus the best span's "
               "> 0.0) instead of per-window softmax probabilities"),
    ("inputs", "our windows: each text tokenized whole by our tokenizer, window starts "
               "doc_stride pieces apart, questions cut to 64 pieces "
               "(transformers-5+our-extraction)"),
    ("numerics", "TensorFlow's forward pass instead of PyTorch's (ours)"),
)


# ------------------------------------------------------------------ the pipeline's rule
def masked_softmax(logits, p_mask):
    """select_starts_ends' normalisation: [1, L] float32 logits, p_mask int [1, L]
    (1: not a candidate, [CLS] 0) -> probabilities over the candidates and [CLS]."""
    allowed = np.abs(np.asarray(p_mask) - 1) & np.ones_like(p_mask)
    x = np.where(allowed == 0.0, -10000.0, np.asarray(logits, np.float32))
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return x / x.sum(), allowed


def decode_spans(start, end, topk, max_answer_len, desired):
    """transformers 4.57's decode_spans, verbatim in effect."""
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    keep = np.isin(starts, desired.nonzero()) & np.isin(ends, desired.nonzero())
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[0, starts, ends]


def pipeline_answer(windows: list, context: str, top_k=1, max_answer_len=30,
                    handle_impossible_answer=True) -> dict:
    """The 4.57 pipeline's postprocess (fast tokenizer, align_to_words) on the windows a
    dump recorded: per window "start"/"end" logits, "p_mask", "offsets" and "words"
    (the character span of each token's whitespace word, None to fall back)."""
    min_null_score, answers = 1000000, []
    for w in windows:
        p_mask = np.asarray([w["p_mask"]], np.int64)
        start, desired = masked_softmax([w["start"]], p_mask)
        end, _ = masked_softmax([w["end"]], p_mask)
        if handle_impossible_answer:
            min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
        start[0, 0] = end[0, 0] = 0.0
        starts, ends, scores = decode_spans(start, end, top_k * 2 + 10, max_answer_len, desired)
        for s, e, score in zip(starts, ends, scores):
            if w["words"][s] is None or w["words"][e] is None:
                first, last = w["offsets"][s][0], w["offsets"][e][1]
            else:
                first, last = w["words"][s][0], w["words"][e][1]
            text = context[first:last]
            same = [a for a in answers if a["text"].lower() == text.lower()]
            if same:
                same[0]["score"] += score.item()
            else:
                answers.append(dict(text=text, start=first, end=last, score=score.item()))
    if handle_impossible_answer:
        answers.append(dict(text="", start=0, end=0, score=min_null_score))
    return sorted(answers, key=lambda a: a["score"], reverse=True)[0]


# ------------------------------------------------------------------ the ladder
def piece_bounds(ids, offsets, context: str, space_id) -> tuple:
    """Per token (ids, and offsets into the context with [0, 0] for special tokens), our
    piece bounds: (starts, ends), the code-point span of the token's characters, -1 in
    both where it has none and is no candidate. The token's leading whitespace is
    skipped (the fast tokenizer's offsets of a "\u2581"-piece take in the space before
    the word). A lone "\u2581" (space_id) has no characters, as in our
    tokenize_with_offsets; its id rules it out because the fast tokenizer gives the one
    that begins a text the first character's offsets."""
    starts, ends = [], []
    for token, (a, b) in zip(ids, offsets):
        while a < b and context[a].isspace():
            a += 1
        has_text = a < b and token != space_id
        starts.append(a if has_text else -1)
        ends.append(b if has_text else -1)
    return starts, ends


def context_starts(windows: list, stride: int) -> list:
    """The index, in the whole context's pieces, of each pipeline window's first context
    piece: windows overlap by `stride` pieces (transformers' overflowing tokens)."""
    pieces = [[t for t, s in zip(w["input_ids"], w["sequence_ids"]) if s == 1] for w in windows]
    starts = [0]
    for previous, current in zip(pieces, pieces[1:]):
        overlap = min(stride, len(previous))
        if previous[len(previous) - overlap:] != current[:overlap]:
            raise ValueError("pipeline windows do not overlap by doc_stride pieces")
        starts.append(starts[-1] + len(previous) - overlap)
    return starts


def best_windows(window_starts: list, window_lengths: list, total: int) -> list:
    """For each of `total` pieces, the window that reads it best: the most context,
    min(left, right) + 0.01 * window length, the first such window on ties (the
    reference _check_is_max_context, as tasks/window_batches.py)."""
    best = []
    for piece in range(total):
        scores = [min(piece - s, s + n - 1 - piece) + 0.01 * n if s <= piece < s + n else -1
                  for s, n in zip(window_starts, window_lengths)]
        best.append(max(range(len(scores)), key=lambda k: (scores[k], -k)))
    return best


def top_positions(logits, n) -> list:
    """The n highest positions, highest first, the lower position first on ties
    (extract_answers_python's order)."""
    return sorted(range(len(logits)), key=lambda i: -logits[i])[:n]


def ladder_answer(windows: list, context: str, state: int, n_best=20, max_answer_len=30,
                  null_threshold=0.0) -> dict:
    """The answer after the first `state` changes of LADDER (1: "merge" ... 5: "logits"),
    with "pair": the (window, start, end) positions of the best span (None if none).
    windows: per window "start"/"end" logits, "p_mask" (1: not context, [CLS] 0),
    "words" and "offsets" (the pipeline's widening), "start_char"/"end_char" (our piece
    bounds, -1 where none) and "best" (whether this window reads each token best).
    Ties: the first in position order (states 1-2, as the pipeline's argmax) or in
    start-rank-major order (3-5, as extract_answers_python); then the earlier window."""
    best, best_score, null_scores, pair = None, -np.inf, [], None
    for k, w in enumerate(windows):
        p_mask = np.asarray([w["p_mask"]], np.int64)
        start_logits = np.asarray(w["start"], np.float32)
        end_logits = np.asarray(w["end"], np.float32)
        if state >= 5:
            start, end = start_logits, end_logits
            null_scores.append(start[0] + end[0])
        else:
            start = masked_softmax([start_logits], p_mask)[0][0]
            end = masked_softmax([end_logits], p_mask)[0][0]
            null_scores.append((start[0] * end[0]).item())
        positions = np.arange(len(start))
        can_start = (p_mask[0] == 0) & (positions > 0)
        can_end = can_start.copy()
        if state >= 2:
            can_start &= np.asarray(w["start_char"]) >= 0
            can_end &= np.asarray(w["end_char"]) >= 0
        if state >= 4:
            can_start &= np.asarray(w["best"], bool)
        if state >= 3:
            order_s = np.asarray(top_positions(start_logits, n_best))
            order_e = np.asarray(top_positions(end_logits, n_best))
        else:
            order_s = order_e = positions
        s, e = order_s[:, None], order_e[None, :]
        valid = can_start[s] & can_end[e] & (e >= s) & (e - s < max_answer_len)
        scores = start[s] + end[e] if state >= 5 else start[s] * end[e]
        scores = np.where(valid, scores, -np.inf)
        flat = int(np.argmax(scores))
        score = scores.flat[flat]
        if not score > best_score:
            continue
        best_score = score
        s, e = int(order_s[flat // len(order_e)]), int(order_e[flat % len(order_e)])
        pair = (k, s, e)
        if state >= 2:
            best = (w["start_char"][s], w["end_char"][e])
        elif w["words"][s] is None or w["words"][e] is None:
            best = (w["offsets"][s][0], w["offsets"][e][1])
        else:
            best = (w["words"][s][0], w["words"][e][1])
    if state >= 5:
        null = best is None or np.float32(min(null_scores) - best_score) > null_threshold
    else:
        null = best is None or min(null_scores) > best_score
    if null:
        return dict(text="", start=-1, end=-1, pair=pair)
    return dict(text=context[best[0]:best[1]], start=int(best[0]), end=int(best[1]), pair=pair)


def pipeline_windows_for_ladder(windows: list, context: str, stride: int, space_id) -> list:
    """The pipeline's windows with what ladder_answer needs of ours: our piece bounds
    and the max-context flags, per token (space_id: the lone "\u2581" piece's id)."""
    starts = context_starts(windows, stride)
    lengths = [sum(1 for s in w["sequence_ids"] if s == 1) for w in windows]
    best = best_windows(starts, lengths, starts[-1] + lengths[-1])
    out = []
    for k, w in enumerate(windows):
        first, last = piece_bounds(w["input_ids"], w["offsets"], context, space_id)
        is_context = [s == 1 for s in w["sequence_ids"]]
        index, seen = [], 0
        for c in is_context:
            index.append(starts[k] + seen)
            seen += c
        out.append(dict(w, start_char=[f if c else -1 for f, c in zip(first, is_context)],
                        end_char=[e if c else -1 for e, c in zip(last, is_context)],
                        best=[c and best[i] == k for i, c in zip(index, is_context)]))
    return out


def our_windows_for_ladder(windows: list) -> list:
    """transformers-5+our-extraction's dumped windows in ladder_answer's terms: our
    start_char already holds the max-context rule."""
    out = []
    for w in windows:
        sep = w["input_ids"].index(3)  # the first [SEP]: the context follows it
        p_mask = [0 if i == 0 or sep < i < len(w["input_ids"]) - 1 else 1
                  for i in range(len(w["input_ids"]))]
        out.append(dict(w, p_mask=p_mask, best=[True] * len(p_mask)))
    return out


def inputs_kind(pipeline_windows: list, our_windows: list, max_query_length=64) -> str:
    """Why the two sets of windows differ: "question_cut" (ours keeps max_query_length
    question pieces, the pipeline's fast-tokenizer path all), "question" (other question
    pieces), "tokenization" (other context pieces), "windows" (the same pieces in other
    windows) or "same"."""
    ours_ids = [w["input_ids"] for w in our_windows]
    theirs = [w["input_ids"] for w in pipeline_windows]
    if ours_ids == theirs:
        return "same"

    def split(ids):  # question pieces, context pieces of a window
        sep = ids.index(3)
        return ids[1:sep], ids[sep + 1:-1]

    question_ours, question_theirs = split(ours_ids[0])[0], split(theirs[0])[0]
    if question_ours != question_theirs:
        cut = question_theirs[:max_query_length] == question_ours
        return "question_cut" if cut else "question"
    return "windows" if _whole(theirs, split) == _whole(ours_ids, split) else "tokenization"


def _whole(windows_ids, split) -> list:
    """A question's context pieces, rebuilt from overlapping windows (each window's
    pieces are a contiguous run of the context's; the overlap is found, not assumed)."""
    whole = []
    for ids in windows_ids:
        context = split(ids)[1]
        for overlap in range(min(len(whole), len(context)), -1, -1):
            if whole[len(whole) - overlap:] == context[:overlap]:
                whole += context[overlap:]
                break
    return whole


def classify(pipeline_record: dict, our_text: str, context: str, stride: int,
             space_id) -> dict:
    """The answer texts along LADDER for one question, as far as the pipeline's windows
    and logits reach ("port" ... "logits"; "numerics" is ours), and the first change
    after which the text is not the pipeline's: None when ours is the pipeline's,
    "inputs" when only the windows and the forward pass remain (`settle` tells "inputs"
    from "numerics"); with a detail (`change_detail`)."""
    theirs = pipeline_windows_for_ladder(pipeline_record["windows"], context, stride,
                                         space_id)
    texts = {"pipeline": pipeline_record["answer"]["text"],
             "port": pipeline_answer(pipeline_record["windows"], context)["text"]}
    pairs = {}
    for state, (name, _) in enumerate(LADDER[1:6], start=1):
        found = ladder_answer(theirs, context, state)
        texts[name], pairs[name] = found["text"], found["pair"]
    texts["numerics"] = our_text
    step = detail = None
    if our_text != texts["pipeline"]:
        names = [name for name, _ in LADDER]
        step = next((name for name in names[:6] if texts[name] != texts["pipeline"]),
                    "inputs")
        if step != "inputs":
            before = names[names.index(step) - 1]
            detail = change_detail(step, texts[before], texts[step],
                                   pairs.get(before) == pairs.get(step))
    return dict(texts=texts, step=step, detail=detail)


def change_detail(step: str, before: str, after: str, same_pair: bool) -> str:
    """What a change of LADDER did to an answer: "no_answer" (now ""), "answer" (was "",
    now a span); for "piece_bounds", with the same best span positions, "space" (the
    pipeline's text only adds the space before it) or "widened" (the pipeline's text
    runs on to whitespace: punctuation or letters attached to the span's first or last
    piece), else "span"; otherwise "span" (another span)."""
    if after == "" and before != "":
        return "no_answer"
    if before == "" and after != "":
        return "answer"
    if step == "piece_bounds" and same_pair:
        return "space" if before.strip() == after else "widened"
    return "span"


def settle(result: dict, pipeline_record: dict, transformers5_record: dict,
           context: str) -> dict:
    """A classify() result that reached "inputs", with transformers-5+our-extraction's
    answer and windows: "inputs" (its answer already differs: the windows) or "numerics"
    (only TensorFlow's forward pass makes ours differ)."""
    texts = dict(result["texts"], inputs=transformers5_record["answer"]["text"])
    texts["inputs_recomputed"] = ladder_answer(
        our_windows_for_ladder(transformers5_record["windows"]), context, 5)["text"]
    if texts["inputs"] != texts["pipeline"]:
        detail = inputs_kind(pipeline_record["windows"], transformers5_record["windows"])
        return dict(result, texts=texts, step="inputs", detail=detail)
    return dict(result, texts=texts, step="numerics", detail=None)


DETAILS = {
    ("merge", "span"): "another span: the pipeline's summed probability of several piece "
                       "spans that widen to one text beat the best single span",
    ("merge", "no_answer"): "no answer: the best single span's probability is below "
                            "[CLS]'s; only the pipeline's sum over spans with one text "
                            "beat it",
    ("piece_bounds", "space"): "the same span; the pipeline's text adds the space before "
                               "it (offsets of a \u2581-piece include the space)",
    ("piece_bounds", "widened"): "the same span; the pipeline widens it to whole "
                                 "whitespace-delimited words (punctuation or letters "
                                 "attached to its first or last piece), ours answers "
                                 "exactly its pieces' characters",
    ("piece_bounds", "span"): "another span: the pipeline's best starts or ends at a lone "
                              "\u2581 piece, which has no characters and is no candidate "
                              "for ours",
    ("piece_bounds", "no_answer"): "no answer: without the spans that start or end at a "
                                   "lone \u2581 piece, [CLS] wins",
    ("n_best", "span"): "another span: the pipeline's best starts or ends outside the 20 "
                        "highest logits",
    ("n_best", "no_answer"): "no answer: no span within the 20 highest logits beats [CLS]",
    ("max_context", "span"): "another span: the pipeline's best starts in a window that "
                             "does not read that piece best",
    ("max_context", "no_answer"): "no answer: without the spans starting outside their "
                                  "best window, [CLS] wins",
    ("logits", "span"): "another span: across windows, logit sums rank spans otherwise "
                        "than per-window probabilities",
    ("logits", "no_answer"): "no answer: the least [CLS] logit sum over the windows beats "
                             "the best span's (per-window probabilities did not)",
    ("logits", "answer"): "an answer: per-window probabilities put [CLS] first, logit sums "
                          "a span",
    ("inputs", "tokenization"): "other context pieces: our tokenizer cuts the context "
                                "otherwise than the pipeline's fast tokenizer, so the model "
                                "reads other inputs",
    ("inputs", "windows"): "the same pieces in other windows (doc_stride 128 is the step "
                           "between windows for ours, the overlap for the pipeline)",
    ("inputs", "question"): "the question's pieces differ (the fast tokenizer keeps a "
                            "\u2581 piece for whitespace at the end of a question, which "
                            "ours strips)",
    ("inputs", "question_cut"): "the question has more than 64 pieces: ours keeps 64, "
                                "the pipeline (fast tokenizer) all of them",
    ("inputs", "same"): "identical inputs (PyTorch batch numerics)",
    ("numerics", None): "TensorFlow's float32 forward pass against PyTorch's on the same "
                        "windows: a near tie decided the other way",
}


def pipeline_pieces(record: dict, stride: int) -> tuple:
    """(question pieces, whole context's pieces, their offsets) of a pipeline dump record."""
    windows = record["windows"]
    question = [t for t, s in zip(windows[0]["input_ids"], windows[0]["sequence_ids"])
                if s == 0]
    context, offsets = [], []
    for start, w in zip(context_starts(windows, stride), windows):
        rows = [k for k, s in enumerate(w["sequence_ids"]) if s == 1]
        context[start:] = [w["input_ids"][k] for k in rows]
        offsets[start:] = [w["offsets"][k] for k in rows]
    return question, context, offsets


def first_difference(a: list, b: list, around: int = 2) -> tuple:
    """The stretch of two piece lists around where they first differ."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return a[max(0, i - around):i + around + 1], b[max(0, i - around):i + around + 1]


def _span(context: str, start: int, end: int) -> str:
    return f"[{start}, {end}) {context[start:end]!r}" if start >= 0 else "none"


def tokenization_check(pipeline_records: list, questions: list, stride: int,
                       ours: dict) -> dict:
    """How the pipeline's pieces compare with our tokenizer's as our windows use it (each
    text tokenized whole). ours: "tokenize"(texts) -> ids per text (for the questions),
    "with_offsets"(texts) -> (ids, starts, ends) per text (for the contexts),
    "piece_names"(ids) -> strings, and "space_id" (the lone "\u2581" piece's id). Where
    the context pieces are the same, also whether the piece bounds the chain takes from
    the pipeline's offsets (piece_bounds) are our tokenizer's spans. With the first
    difference of the first context whose pieces differ, and of the first whose spans do."""
    question_ids = ours["tokenize"]([q["question"] for q in questions])
    contexts = ours["with_offsets"]([q["context"] for q in questions])
    out = dict(questions=len(questions), question_same=0, context_same=0,
               context_same_spans=0, examples={})
    for record, q, mine_question, (ids, starts, ends) in zip(
            pipeline_records, questions, question_ids, contexts):
        question, pieces, offsets = pipeline_pieces(record, stride)
        out["question_same"] += question == mine_question
        if pieces != ids:
            if "pieces" not in out["examples"]:
                a, b = first_difference(pieces, ids)
                out["examples"]["pieces"] = dict(id=q["id"], pipeline=ours["piece_names"](a),
                                                 ours=ours["piece_names"](b))
            continue
        out["context_same"] += 1
        bounds = list(zip(*piece_bounds(pieces, offsets, q["context"], ours["space_id"])))
        spans = [(s, e) if e > s else (-1, -1) for s, e in zip(starts, ends)]
        if bounds == spans:
            out["context_same_spans"] += 1
        elif "spans" not in out["examples"]:
            k = next(k for k, (x, y) in enumerate(zip(bounds, spans)) if x != y)
            out["examples"]["spans"] = dict(
                id=q["id"], position=k, piece=ours["piece_names"]([pieces[k]])[0],
                pipeline=_span(q["context"], *bounds[k]), ours=_span(q["context"], *spans[k]))
    return out


def agreement(records: dict, questions: list, stride: int, space_id,
              transformers5_records) -> dict:
    """Agreement shares and the classification of every difference. records: PIPELINE
    and OURS -> dumped records (the same questions, in order); space_id: the lone
    "\u2581" piece's id; transformers5_records(indices) -> {index: record} of
    transformers-5+our-extraction, asked only for the questions that need it."""
    n = len(records[OURS])
    text = {name: [r["answer"]["text"] for r in rs] for name, rs in records.items()}
    a, b = text[PIPELINE], text[OURS]
    report = dict(questions=n, same_text=sum(x == y for x, y in zip(a, b)),
                  same_stripped=sum(x.strip() == y.strip() for x, y in zip(a, b)),
                  both_no_answer=sum(x == y == "" for x, y in zip(a, b)),
                  pipeline_leading_space=sum(x[:1].isspace() for x in a),
                  no_answer={PIPELINE: a.count(""), OURS: b.count("")})
    results = [classify(records[PIPELINE][i], b[i], questions[i]["context"], stride,
                        space_id) for i in range(n)]
    later = [i for i, r in enumerate(results) if r["step"] == "inputs"]
    fetched = transformers5_records(later) if later else {}
    for i in later:
        results[i] = settle(results[i], records[PIPELINE][i], fetched[i],
                            questions[i]["context"])
    kinds, examples = {}, {}
    for i, result in enumerate(results):
        if result["step"] is not None:
            key = (result["step"], result["detail"])
            kinds[key] = kinds.get(key, 0) + 1
            examples.setdefault(key, dict(id=questions[i]["id"],
                                          question=questions[i]["question"],
                                          texts=result["texts"]))
    order = [name for name, _ in LADDER]
    report["kinds"] = [
        dict(step=step, detail=detail, questions=kinds[(step, detail)],
             explanation=DETAILS.get((step, detail), f"{dict(LADDER)[step]} ({detail})"),
             example=examples[(step, detail)])
        for step, detail in sorted(kinds, key=lambda k: (order.index(k[0]), str(k[1])))]
    changes = {}
    for result in results:
        t, previous = result["texts"], result["texts"]["pipeline"]
        for name in order[:6] + ["numerics"]:
            changes[name] = changes.get(name, 0) + (t[name] != previous)
            previous = t[name]
    report["ladder_changes"] = {("inputs+numerics" if k == "numerics" else k): v
                                for k, v in changes.items()}
    report["checks"] = dict(
        port_mismatch=sum(r["texts"]["port"] != r["texts"]["pipeline"] for r in results),
        transformers5_asked=len(later),
        recompute_mismatch=sum(results[i]["texts"]["inputs_recomputed"]
                               != results[i]["texts"]["inputs"] for i in later))
    return report


# ------------------------------------------------------------------ report
def print_agreement(agree):
    n = agree["questions"]
    print(f"\nagreement, {PIPELINE} vs ours, over {n} sample questions (random weights): "
          f"same answer text {agree['same_text']} ({100 * agree['same_text'] / n:.1f}%); "
          f"the same after stripping surrounding whitespace {agree['same_stripped']} "
          f"({100 * agree['same_stripped'] / n:.1f}%); both no answer "
          f"{agree['both_no_answer']}; no answer: " + ", ".join(
              f"{k} {v}" for k, v in agree["no_answer"].items())
          + f"; the pipeline's answers that begin with a space: "
            f"{agree['pipeline_leading_space']}")
    tok = agree.get("tokenization")
    if tok:
        print(f"pieces: the pipeline's question pieces are our tokenizer's for "
              f"{tok['question_same']} of {tok['questions']} questions, its context pieces "
              f"for {tok['context_same']} of {tok['questions']} contexts (ours tokenizes "
              f"each text whole, as our windows read it); in {tok['context_same_spans']} "
              f"of those {tok['context_same']}, the piece bounds the chain takes from the "
              f"pipeline's offsets (leading whitespace skipped, a lone \u2581 none) are our "
              f"tokenizer's spans (tokenize_with_offsets)")
        for name, ex in tok["examples"].items():
            where = f", piece {ex['position']} {ex['piece']!r}" if "piece" in ex else ""
            print(f"  first difference ({name}), {ex['id']}{where}: pipeline "
                  f"{ex['pipeline']}, ours {ex['ours']}")
    if agree.get("reanalyzed"):
        print(f"(classified again from the run's dumps: {agree['reanalyzed']})")
    checks = agree["checks"]
    print(f"checks: the pipeline's postprocess re-run from its dump differs on "
          f"{checks['port_mismatch']}; {TRANSFORMERS5} asked for {checks['transformers5_asked']} "
          f"questions, our rule re-run on its windows differs from it on "
          f"{checks['recompute_mismatch']}")
    print("\ndifferences, each put down to the first change of the chain after which the "
          "pipeline's answer is no longer its own:")
    print("| change | kind | questions | example | pipeline | after the change | ours |")
    print("|---|---|---:|---|---|---|---|")
    for kind in agree["kinds"]:
        ex, t = kind["example"], kind["example"]["texts"]
        print(f"| {kind['step']} | {kind['explanation']} | {kind['questions']} "
              f"| {ex['id']}: {ex['question']} | {json.dumps(t['pipeline'])} "
              f"| {json.dumps(t[kind['step']])} | {json.dumps(t['numerics'])} |")
    print("\nanswers altered by each change of the chain, from the state before it: "
          + ", ".join(f"{k} {v}" for k, v in agree["ladder_changes"].items()))


