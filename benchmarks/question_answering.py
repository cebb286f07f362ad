"""Question answering, side by side: our exported `answer` signature against what
transformers users run on the same converted weights (PyTorch, CPU, float32, the same
window settings), and how often the answers agree.

    python benchmarks/question_answering.py [--rounds 3] [--questions 32]
        [--agreement_questions 781] [--json out.json] [--table out.json]

Needs runs/demo/spm.model (`make demo` writes it): the SentencePiece vocabulary of the
model and of every contender's tokenizer.

Contenders, each a worker process (benchmarks/harness.py), interleaved round by round:
- ours: `tf.saved_model.load(export)`.signatures["answer"], in a process that imports
  only tensorflow and tensorflow_text: the in-graph windows, the model and the answer
  extraction, strings in, answers out.
- transformers-4.57-pipeline: transformers 4.57's question-answering pipeline (the last
  release that has it; transformers 5 removed it) in an environment of its own, created
  once under runs/bench_envs/transformers-4.57/ (python -m venv, pip install
  transformers==4.57.* torch==2.13.0 sentencepiece protobuf; torch pinned, to the CPU
  build). Called with max_seq_len 384, doc_stride 128, max_question_len 64,
  max_answer_len 30, handle_impossible_answer=True, top_k 1, batch_size 1 or 32.
- transformers-5+our-extraction: what a transformers 5 user writes instead: the
  project's windows (data/squad_windows.py, as a tf.function), transformers 5's
  AlbertForQuestionAnswering on them (padding cut to the longest window, as ours does)
  and the project's Python answer extraction (data/squad_answers.extract_answers_python).

The model: transformers' AlbertForQuestionAnswering with the albert-base-v2 shape (E 128,
H 768, 12 layers, 12 heads, FFN 3072, 512 positions) and the vocabulary's 5,000 pieces,
seeded random weights, saved with save_pretrained together with an ALBERT tokenizer of
runs/demo/spm.model (slow and fast; lowercasing, accents stripped, as ours), converted
with albert_keras.convert.from_transformers and exported with serving.export.export at
max_seq_length 384 with doc_stride 128, max_query_length 64, n_best_size 20,
max_answer_length 30, SQuAD 2.0 answers, null threshold 0.0.

Timing: --questions sample questions of the bundled SQuAD 2.0 sample (a seeded choice).
Batch 1: each of them alone, once per round; latency p50 / p99 over all calls of all
rounds. Batch 32: the same questions 32 at a time (cycled up to 32 when fewer); a
round's figure is the seconds of its batch-32 calls, as questions/s. "GFLOP/s" counts
the model FLOPs of the contender's own windows (ALBERT-base forward at each window's
real length, padding left out). The matmul ceiling is measured by a worker of its own in
the same rounds. Each worker first makes every timed call once (warm-up). The default
run (3 rounds of 32 questions) takes about 11 minutes on 2 cores.

Agreement (untimed, after the rounds; --agreement_questions N, 781 for the whole
sample: about 1 s a question for each of the two contenders on 2 cores, 30 minutes for
all 781): the first N questions through the pipeline and ours at batch 32; the share
with the same answer text, and every difference put down to the first of a chain of
single changes that turns the pipeline's answer into ours (LADDER): the pipeline's
postprocess re-run on its own windows and logits (recorded by a forward hook), then our
extraction's rules one at a time on those same logits, then our windows
(transformers-5+our-extraction, asked only for the questions that get that far) and
last TensorFlow's forward pass (ours). Also compared: the pipeline's pieces with our
tokenizer's, the text tokenized whole and each word alone (as our windows read it).
Random weights: see BENCHMARKS.md for what the figure does and does not say.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import harness  # noqa: E402  (standard library only: runs in every env)

SPM_MODEL = "runs/demo/spm.model"
SQUAD_SAMPLE = "training/datasets/squad2_sample/squad2-sample.json"
ENV_DIR = "runs/bench_envs/transformers-4.57"
ENV_PACKAGES = ("transformers==4.57.*", "torch==2.13.0", "sentencepiece", "protobuf")
WORK_DIR = "runs/bench_qa"
SEED = 0
# albert-base-v2's shape; the vocabulary is runs/demo/spm.model's.
SHAPE = dict(embedding_size=128, hidden_size=768, num_hidden_layers=12,
             num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
WINDOWS = dict(max_seq_length=384, doc_stride=128, max_query_length=64)
ANSWERS = dict(n_best_size=20, max_answer_length=30, version_2=True, null_threshold=0.0)
PIPELINE_ARGS = dict(max_seq_len=384, doc_stride=128, max_question_len=64, max_answer_len=30,
                     handle_impossible_answer=True, top_k=1)
BATCH = 32

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
    ("word_bounds", "spans start at the first piece and end at the last piece of a word "
                    "(data/word_split.py: punctuation marks are words of their own) and "
                    "answer exactly those words; the pipeline takes any piece and widens "
                    "the span to whole whitespace-delimited words, its offsets taking in "
                    "the space before a word"),
    ("n_best", "only the 20 highest start and the 20 highest end logits of a window "
               "(over all its positions, question and [CLS] included) make spans"),
    ("max_context", "a span starts only in the window that reads its first piece best"),
    ("logits", "candidates and the no-answer score compared as logit sums across windows "
               "(the no-answer decision: least [CLS] start+end logit minus the best span's "
               "> 0.0) instead of per-window softmax probabilities"),
    ("inputs", "our windows: each word tokenized on its own, window starts doc_stride "
               "pieces apart, questions cut to 64 pieces (transformers-5+our-extraction)"),
    ("numerics", "TensorFlow's forward pass instead of PyTorch's (ours)"),
)


# ------------------------------------------------------------------ preparation
def env_python(env_dir=ENV_DIR) -> str:
    """The transformers 4.57 environment's python, created once (python -m venv and
    pip); a half-made one (no .ready stamp) is made again."""
    env_dir = os.path.join(ROOT, env_dir)
    python = os.path.join(env_dir, "bin", "python")
    stamp = os.path.join(env_dir, ".ready")
    if os.path.exists(stamp):
        return python
    print(f"creating {os.path.relpath(env_dir, ROOT)} (once): pip install "
          + " ".join(ENV_PACKAGES), flush=True)
    shutil.rmtree(env_dir, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", env_dir], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *ENV_PACKAGES], check=True,
                   stdout=sys.stderr)
    freeze = subprocess.run([python, "-m", "pip", "freeze"], check=True, text=True,
                            capture_output=True).stdout
    with open(stamp, "w") as f:
        f.write(freeze)
    return python


def prepare_model(work_dir):
    """(transformers 5) The random AlbertForQuestionAnswering, saved with save_pretrained."""
    import sentencepiece
    import torch
    import transformers

    vocab = sentencepiece.SentencePieceProcessor(model_file=SPM_MODEL).get_piece_size()
    torch.manual_seed(SEED)
    config = transformers.AlbertConfig(vocab_size=vocab, **SHAPE)
    model = transformers.AlbertForQuestionAnswering(config).eval()
    model.save_pretrained(os.path.join(work_dir, "hf"))


def prepare_tokenizer(work_dir):
    """(transformers 4.57) The slow and fast ALBERT tokenizers of the SentencePiece
    model, saved beside the model; checks that 4.57 reads the model whole."""
    import transformers

    directory = os.path.join(work_dir, "hf")
    options = dict(do_lower_case=True, remove_space=True, keep_accents=False)
    transformers.AlbertTokenizer(vocab_file=SPM_MODEL, **options).save_pretrained(directory)
    transformers.AlbertTokenizerFast(vocab_file=SPM_MODEL, **options).save_pretrained(directory)
    _, info = transformers.AlbertForQuestionAnswering.from_pretrained(
        directory, output_loading_info=True)
    missing = {k: v for k, v in info.items() if v}
    if missing:
        raise RuntimeError(f"transformers 4.57 does not read {directory} whole: {missing}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    if not tokenizer.is_fast:
        raise RuntimeError("the pipeline needs the fast tokenizer (offsets)")


def prepare_export(work_dir):
    """(main env) from_transformers, the fine-tuning settings, serving.export.export."""
    from albert_keras.convert import from_transformers
    from albert_keras.vocabulary import read_model_proto
    from serving.export import export

    model = from_transformers(os.path.join(work_dir, "hf"))
    model.answer_settings = dict(WINDOWS, **ANSWERS)
    print(export(model, read_model_proto(SPM_MODEL), os.path.join(work_dir, "export"),
                 version=1, max_seq_length=WINDOWS["max_seq_length"]))


def sample_questions(path=SQUAD_SAMPLE) -> list:
    from albert_keras.data.squad import read_squad
    return [dict(id=e.qid, question=e.question, context=e.context,
                 answers=[text for text, _ in e.answers]) for e in read_squad(path)]


def timing_set(count: int, total: int, seed: int = SEED) -> list:
    """The indices of the timed questions: a seeded choice, in file order."""
    return sorted(random.Random(seed).sample(range(total), min(count, total)))


def batches(indices: list, size: int) -> list:
    """indices in batches of `size`, cycled up to one full batch when fewer."""
    if len(indices) < size:
        return [[indices[i % len(indices)] for i in range(size)]] if indices else []
    return [indices[i:i + size] for i in range(0, len(indices), size)]


# ------------------------------------------------------------------ workers
def _read_questions(work_dir):
    with open(os.path.join(work_dir, "questions.json"), encoding="utf-8") as f:
        return json.load(f)


def ours_answerer(work_dir):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops of the SavedModel)

    answer = tf.saved_model.load(os.path.join(work_dir, "export", "1")).signatures["answer"]

    def run(questions, contexts):
        out = answer(question=tf.constant(questions), context=tf.constant(contexts))
        out = {name: value.numpy() for name, value in out.items()}
        return [dict(text=out["answer"][i].decode("utf-8"), start=int(out["answer_start"][i]),
                     end=int(out["answer_end"][i]), score=float(out["score"][i]))
                for i in range(len(questions))]
    return dict(answer=run)


def pipeline_answerer(work_dir):
    import transformers

    directory = os.path.join(work_dir, "hf")
    pipe = transformers.pipeline("question-answering", model=directory, tokenizer=directory,
                                 device=-1)
    assert pipe.tokenizer.is_fast and transformers.__version__.startswith("4.57")

    def run(questions, contexts, batch_size=None):
        out = pipe(question=list(questions), context=list(contexts),
                   batch_size=batch_size or min(len(questions), BATCH), **PIPELINE_ARGS)
        out = out if isinstance(out, list) else [out]
        return [dict(text=a["answer"], start=int(a["start"]), end=int(a["end"]),
                     score=float(a["score"])) for a in out]

    def dump(questions, contexts, path):
        """Answers plus, per window, what the pipeline computed them from."""
        captured = []

        def hook(module, args, kwargs, output):
            mask = kwargs["attention_mask"].numpy().astype(bool)
            for row in range(mask.shape[0]):
                captured.append((kwargs["input_ids"][row][mask[row]].tolist(),
                                 output.start_logits[row][mask[row]].tolist(),
                                 output.end_logits[row][mask[row]].tolist()))
        handle = pipe.model.register_forward_hook(hook, with_kwargs=True)
        try:
            answers = run(questions, contexts, BATCH)
        finally:
            handle.remove()
        pre = {k: PIPELINE_ARGS[k] for k in ("max_seq_len", "doc_stride", "max_question_len")}
        records, row = [], 0
        for question, context, found in zip(questions, contexts, answers):
            windows = []
            for item in pipe.preprocess({"question": question, "context": context}, **pre):
                ids, start, end = captured[row]
                row += 1
                if ids != item["input_ids"][0].tolist():
                    raise RuntimeError("captured logits out of step with the windows")
                windows.append(dict(input_ids=ids, start=start, end=end,
                                    p_mask=[int(v) for v in item["p_mask"][0].tolist()],
                                    **_encoding_words(item["encoding"])))
            records.append(dict(answer=found, windows=windows))
        with open(path, "w") as f:
            json.dump(records, f)

    def window_lengths(question, context):
        pre = {k: PIPELINE_ARGS[k] for k in ("max_seq_len", "doc_stride", "max_question_len")}
        return [item["input_ids"].shape[1] for item in pipe.preprocess(
            {"question": question, "context": context}, **pre)]
    return dict(answer=run, dump=dump, window_lengths=window_lengths)


def _encoding_words(enc) -> dict:
    """Per token: its offsets and the character span get_indices gives it (the
    whitespace-delimited word around it; None where get_indices falls back to offsets)."""
    words = []
    for token in range(len(enc.ids)):
        try:
            word = enc.token_to_word(token)
            words.append(list(enc.word_to_chars(word, sequence_index=1)))
        except Exception:  # the pipeline's own fallback
            words.append(None)
    return dict(offsets=[list(o) for o in enc.offsets], sequence_ids=enc.sequence_ids,
                words=words)


def transformers5_answerer(work_dir):
    import numpy as np
    import tensorflow as tf
    import torch
    import transformers

    from albert_keras.data.squad_answers import AnswerSettings, extract_answers_python
    from albert_keras.data.squad_windows import WindowSettings, squad_windows
    from albert_keras.tokenizer import AlbertTokenizer
    from albert_keras.vocabulary import read_model_proto

    tokenizer = AlbertTokenizer(read_model_proto(SPM_MODEL), lower_case=True)
    window_settings, answer_settings = WindowSettings(**WINDOWS), AnswerSettings(**ANSWERS)
    text = tf.TensorSpec([None], tf.string)
    make_windows = tf.function(lambda q, c: squad_windows(tokenizer, q, c, window_settings),
                               input_signature=[text, text])
    model = transformers.AlbertForQuestionAnswering.from_pretrained(
        os.path.join(work_dir, "hf")).eval()

    def forward(questions, contexts):
        windows = make_windows(tf.constant(questions), tf.constant(contexts))
        windows = tf.nest.map_structure(lambda t: t.numpy(), windows)
        features = windows["features"]
        width = max(int(features["input_mask"].sum(axis=1).max(initial=0)), 2)
        inputs = {name: torch.from_numpy(features[key][:, :width].astype(np.int64))
                  for name, key in (("input_ids", "input_ids"), ("token_type_ids", "segment_ids"),
                                    ("attention_mask", "input_mask"))}
        with torch.inference_mode():
            out = model(**inputs)
        return windows, {"start_logits": out.start_logits.numpy(),
                         "end_logits": out.end_logits.numpy()}

    def run(questions, contexts):
        windows, outputs = forward(questions, contexts)
        return [dict(text=a["text"], start=a["start"], end=a["end"], score=a["score"])
                for a in extract_answers_python(windows, outputs, contexts, answer_settings)]

    def dump(questions, contexts, path):
        records = []
        for first in range(0, len(questions), BATCH):
            qs, cs = questions[first:first + BATCH], contexts[first:first + BATCH]
            windows, outputs = forward(qs, cs)
            found = extract_answers_python(windows, outputs, cs, answer_settings)
            for i, answer in enumerate(found):
                rows = []
                for w in np.flatnonzero(windows["window_example"] == i):
                    n = int(windows["features"]["input_mask"][w].sum())
                    rows.append(dict(
                        input_ids=windows["features"]["input_ids"][w, :n].tolist(),
                        segment_ids=windows["features"]["segment_ids"][w, :n].tolist(),
                        start=outputs["start_logits"][w, :n].tolist(),
                        end=outputs["end_logits"][w, :n].tolist(),
                        start_char=windows["start_char"][w, :n].tolist(),
                        end_char=windows["end_char"][w, :n].tolist()))
                records.append(dict(answer=dict(text=answer["text"], start=answer["start"],
                                                end=answer["end"], score=answer["score"]),
                                    windows=rows))
        with open(path, "w") as f:
            json.dump(records, f)

    def window_lengths(question, context):
        mask = make_windows(tf.constant([question]), tf.constant([context]))[
            "features"]["input_mask"]
        return tf.reduce_sum(mask, axis=1).numpy().tolist()
    return dict(answer=run, dump=dump, window_lengths=window_lengths)


def worker(args):
    if args.worker == "ceiling":
        harness.matmul_ceiling_worker()
        return
    factory = {OURS: ours_answerer, PIPELINE: pipeline_answerer,
               TRANSFORMERS5: transformers5_answerer}[args.worker]
    contender = factory(args.work_dir)
    answer, dump = contender["answer"], contender.get("dump")
    questions = _read_questions(args.work_dir)
    timed = [questions[i] for i in timing_set(args.questions, len(questions))]
    singles = [([q["question"]], [q["context"]]) for q in timed]
    groups = [([timed[i]["question"] for i in batch], [timed[i]["context"] for i in batch])
              for batch in batches(list(range(len(timed))), BATCH)]
    for call in singles:  # warm-up: every timed call once (each shape's first run)
        answer(*call)
    found = [a["text"] for call in groups for a in answer(*call)]
    info = {"ready": True, "timed_answers": found[:len(timed)]}
    if "window_lengths" in contender:
        lengths = {i: contender["window_lengths"](q["question"], q["context"])
                   for i, q in enumerate(timed)}
        info["timed_windows"] = sum(len(v) for v in lengths.values())
        info["batch32_window_lengths"] = [n for batch in batches(list(range(len(timed))), BATCH)
                                          for i in batch for n in lengths[i]]
    harness.reply(info)

    def run():
        return {"batch1": [t for call in singles for t in harness.time_calls(
                    lambda: answer(*call), 1)],
                "batch32": [t for call in groups for t in harness.time_calls(
                    lambda: answer(*call), 1)],
                "batch32_questions": sum(len(q) for q, _ in groups)}

    def agree(indices, path):
        chosen = [questions[i] for i in indices]
        qs, cs = [q["question"] for q in chosen], [q["context"] for q in chosen]
        start = time.perf_counter()
        if dump is not None:
            dump(qs, cs, path)
        else:
            found = []
            for first in range(0, len(qs), BATCH):
                found += answer(qs[first:first + BATCH], cs[first:first + BATCH])
            with open(path, "w") as f:
                json.dump([dict(answer=a) for a in found], f)
        return {"path": path, "seconds": time.perf_counter() - start}
    harness.serve({"run": run, "agree": agree})


class EnvWorker(harness.Worker):
    """harness.Worker, run by another environment's python."""

    def __init__(self, name: str, python: str, argv: list, env: dict | None = None):
        self.name = name
        self.log = open(os.path.join(os.environ.get("BENCH_LOG_DIR", "/tmp"),
                                     f"bench-{name}.log"), "w")
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        self.proc = subprocess.Popen(
            [python] + argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, env=dict(environment, **(env or {})))


# ------------------------------------------------------------------ the pipeline's rule
def masked_softmax(logits, p_mask):
    """select_starts_ends' normalisation: [1, L] float32 logits, p_mask int [1, L]
    (1: not a candidate, [CLS] 0) -> probabilities over the candidates and [CLS]."""
    import numpy as np
    allowed = np.abs(np.asarray(p_mask) - 1) & np.ones_like(p_mask)
    x = np.where(allowed == 0.0, -10000.0, np.asarray(logits, np.float32))
    x = np.exp(x - x.max(axis=-1, keepdims=True))
    return x / x.sum(), allowed


def decode_spans(start, end, topk, max_answer_len, desired):
    """transformers 4.57's decode_spans, verbatim in effect."""
    import numpy as np
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
    import numpy as np
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
def word_bounds(offsets, context: str, words) -> tuple:
    """Per token (offsets into the context, [0, 0] for special tokens), in our words'
    terms (words: [(start, end)], data/word_split.py): the code-point start of the word
    the token is the first piece of, else -1; the end of the word it is the last piece
    of, else -1. A token's leading spaces are skipped; a token that is only a space (a
    lone "\u2581") is the first piece of the word right after it, as in our windows
    (a word tokenized alone starts with that piece), and the token after it then is not."""
    starts = {s for s, _ in words}
    ends = {e for _, e in words}
    first, last, claimed = [], [], None
    for a, b in offsets:
        while a < b and context[a].isspace():
            a += 1
        if a == b and b > 0 and b in starts and b != claimed:  # a lone space piece
            first.append(b)
            claimed = b
        else:
            first.append(a if a < b and a in starts and a != claimed else -1)
            claimed = None
        last.append(b if b > a and b in ends else -1)
    return first, last


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
    reference _check_is_max_context, as data/windows.py)."""
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
    "words" and "offsets" (the pipeline's widening), "start_char"/"end_char" (our word
    bounds, -1 where none) and "best" (whether this window reads each token best).
    Ties: the first in position order (states 1-2, as the pipeline's argmax) or in
    start-rank-major order (3-5, as extract_answers_python); then the earlier window."""
    import numpy as np
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


def pipeline_windows_for_ladder(windows: list, context: str, words: list, stride: int) -> list:
    """The pipeline's windows with what ladder_answer needs of ours: our word bounds and
    the max-context flags, per token."""
    starts = context_starts(windows, stride)
    lengths = [sum(1 for s in w["sequence_ids"] if s == 1) for w in windows]
    best = best_windows(starts, lengths, starts[-1] + lengths[-1])
    out = []
    for k, w in enumerate(windows):
        first, last = word_bounds(w["offsets"], context, words)
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


def classify(pipeline_record: dict, our_text: str, context: str, words: list,
             stride: int) -> dict:
    """The answer texts along LADDER for one question, as far as the pipeline's windows
    and logits reach ("port" ... "logits"; "numerics" is ours), and the first change
    after which the text is not the pipeline's: None when ours is the pipeline's,
    "inputs" when only the windows and the forward pass remain (`settle` tells "inputs"
    from "numerics"); with a detail (`change_detail`)."""
    theirs = pipeline_windows_for_ladder(pipeline_record["windows"], context, words, stride)
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
    now a span); for "word_bounds", with the same best span positions, "space" (the
    pipeline's text only adds the space before it) or "widened" (the pipeline's text
    runs on to whitespace: punctuation or letters attached to the words), else "span";
    otherwise "span" (another span)."""
    if after == "" and before != "":
        return "no_answer"
    if before == "" and after != "":
        return "answer"
    if step == "word_bounds" and same_pair:
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
    ("word_bounds", "space"): "the same span; the pipeline's text adds the space before it "
                              "(offsets of a \u2581-piece include the space)",
    ("word_bounds", "widened"): "the same span; the pipeline widens it to whitespace-"
                                "delimited words (punctuation or letters attached to them)",
    ("word_bounds", "span"): "another span: the pipeline's best starts or ends at a piece "
                             "inside a word (it then widens the span to the whole word); "
                             "ours spans only from a word's first piece to a word's last",
    ("word_bounds", "no_answer"): "no answer: no span on word bounds beats [CLS]",
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
    ("inputs", "tokenization"): "other pieces: ours tokenizes each word alone, so "
                                "punctuation attached to a word gets a \u2581 piece of its "
                                "own; the model reads other inputs",
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
    """(question pieces, whole context's pieces) of a pipeline dump record."""
    windows = record["windows"]
    question = [t for t, s in zip(windows[0]["input_ids"], windows[0]["sequence_ids"])
                if s == 0]
    context = []
    for start, w in zip(context_starts(windows, stride), windows):
        context[start:] = [t for t, s in zip(w["input_ids"], w["sequence_ids"]) if s == 1]
    return question, context


def first_difference(a: list, b: list, around: int = 2) -> tuple:
    """The stretch of two piece lists around where they first differ."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return a[max(0, i - around):i + around + 1], b[max(0, i - around):i + around + 1]


def tokenization_check(pipeline_records: list, questions: list, stride: int, whole,
                       per_word, piece_names) -> dict:
    """How the pipeline's pieces compare with ours: the question and the context
    tokenized whole by our tokenizer (whole(texts) -> ids), and the context as our
    windows read it, each word alone (per_word(context) -> ids); with an example of a
    context whose pieces differ each way (piece_names(ids) -> strings)."""
    theirs = [pipeline_pieces(r, stride) for r in pipeline_records]
    q_whole = whole([q["question"] for q in questions])
    c_whole = whole([q["context"] for q in questions])
    out = dict(questions=len(questions),
               question_same=sum(t[0] == o for t, o in zip(theirs, q_whole)),
               context_same_whole=sum(t[1] == o for t, o in zip(theirs, c_whole)),
               context_same_per_word=0, examples={})
    for i, (t, q) in enumerate(zip(theirs, questions)):
        ours = per_word(q["context"])
        out["context_same_per_word"] += t[1] == ours
        for name, mine in (("whole", c_whole[i]), ("per_word", ours)):
            if t[1] != mine and name not in out["examples"]:
                a, b = first_difference(t[1], mine)
                out["examples"][name] = dict(id=q["id"], pipeline=piece_names(a),
                                             ours=piece_names(b))
        out.setdefault("pieces", [0, 0])
        out["pieces"][0] += len(t[1])
        out["pieces"][1] += len(ours)
    return out


def agreement(records: dict, questions: list, stride: int, words_of,
              transformers5_records) -> dict:
    """Agreement shares and the classification of every difference. records: PIPELINE
    and OURS -> dumped records (the same questions, in order); words_of(context) ->
    [(start, end)]; transformers5_records(indices) -> {index: record} of
    transformers-5+our-extraction, asked only for the questions that need it."""
    n = len(records[OURS])
    text = {name: [r["answer"]["text"] for r in rs] for name, rs in records.items()}
    a, b = text[PIPELINE], text[OURS]
    report = dict(questions=n, same_text=sum(x == y for x, y in zip(a, b)),
                  same_stripped=sum(x.strip() == y.strip() for x, y in zip(a, b)),
                  both_no_answer=sum(x == y == "" for x, y in zip(a, b)),
                  pipeline_leading_space=sum(x[:1].isspace() for x in a),
                  no_answer={PIPELINE: a.count(""), OURS: b.count("")})
    results = [classify(records[PIPELINE][i], b[i], questions[i]["context"],
                        words_of(questions[i]["context"]), stride) for i in range(n)]
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


# ------------------------------------------------------------------ driver
def drive(args):
    if not os.path.exists(os.path.join(ROOT, SPM_MODEL)):
        sys.exit(f"{SPM_MODEL} not found: run `make demo` first (it writes the vocabulary)")
    script = os.path.relpath(os.path.abspath(__file__), ROOT)
    header = harness.run_header(script)
    python457 = env_python()
    work_dir = os.path.join(ROOT, args.work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    for python, step in ((sys.executable, "model"), (python457, "tokenizer"),
                         (sys.executable, "export")):
        environment = dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **env)
        subprocess.run([python, script, "--prepare", step, "--work_dir", work_dir], cwd=ROOT,
                       check=True, stdout=sys.stderr, env=environment)
    print(f"model, tokenizer and export ready in {time.perf_counter() - started:.0f} s",
          flush=True)
    questions = sample_questions()
    with open(os.path.join(work_dir, "questions.json"), "w", encoding="utf-8") as f:
        json.dump(questions, f)

    common = ["--work_dir", work_dir, "--questions", str(args.questions)]
    workers = {"ceiling": harness.Worker("qa-ceiling", [script, "--worker", "ceiling"])}
    for name in CONTENDERS:
        argv = [script, "--worker", name] + common
        workers[name] = (EnvWorker(f"qa-{name}", python457, argv, env) if name == PIPELINE
                         else harness.Worker(f"qa-{name}", argv, env))
    ready = {}
    for name, w in workers.items():
        ready[name] = w.answer()
        print(f"ready {name}", flush=True)

    latency = {name: [] for name in CONTENDERS}
    rounds = {name: [] for name in CONTENDERS}
    ceiling = {"float32": [], "bfloat16": []}
    batch_questions = 0
    for r in range(args.rounds):
        for name, w in workers.items():
            if name == "ceiling":
                for dtype, values in w.request("run", n_steps=3)["times"].items():
                    ceiling[dtype].extend(values)
                continue
            result = w.request("run")
            latency[name].extend(result["batch1"])
            batch_questions = result["batch32_questions"]
            rounds[name].append(sum(result["batch32"]))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {harness.median(latency[k]) * 1e3:.0f} ms / {rounds[k][-1]:.1f} s"
            for k in CONTENDERS), flush=True)

    agree = None
    if args.agreement_questions:
        count = min(args.agreement_questions, len(questions))
        dumps = {}
        for name in (PIPELINE, OURS):
            path = os.path.join(work_dir, f"agreement-{name}.json")
            result = workers[name].request("agree", indices=list(range(count)), path=path)
            print(f"agreement: {name} answered {count} questions in "
                  f"{result['seconds']:.0f} s", flush=True)
            with open(path) as f:
                dumps[name] = json.load(f)

        agree = analyze(work_dir, questions[:count], dumps,
                        lambda: workers[TRANSFORMERS5])
    else:
        print("agreement: not run (--agreement_questions 781 runs all the sample)", flush=True)
    rss = {name: w.close()["peak_rss_mib"] for name, w in workers.items()}

    n = 4096
    timed = timing_set(args.questions, len(questions))
    lengths = {OURS: ready[TRANSFORMERS5]["batch32_window_lengths"],
               TRANSFORMERS5: ready[TRANSFORMERS5]["batch32_window_lengths"],
               PIPELINE: ready[PIPELINE]["batch32_window_lengths"]}
    rows = []
    for name in CONTENDERS:
        seconds = harness.median(rounds[name])
        flops = sum(window_flops(length) for length in lengths[name])
        rows.append(dict(contender=name, p50_ms=1e3 * harness.percentile(latency[name], 50),
                         p99_ms=1e3 * harness.percentile(latency[name], 99),
                         latency_samples=len(latency[name]),
                         batch32_round_seconds=rounds[name],
                         questions_per_s=batch_questions / seconds,
                         batch32_windows=len(lengths[name]), gflops=flops / seconds / 1e9,
                         peak_rss_mib=rss[name]))
    answers = {name: ready[name]["timed_answers"] for name in CONTENDERS}
    report = dict(
        header, rounds=args.rounds, questions=len(timed), batch32_questions=batch_questions,
        windows=dict(ours=ready[TRANSFORMERS5]["timed_windows"],
                     pipeline=ready[PIPELINE]["timed_windows"]),
        ceiling_gflops={dtype: 2 * n**3 / harness.median(v) / 1e9
                        for dtype, v in ceiling.items()},
        timed_same_text={f"{x} vs {OURS}": sum(p == q for p, q in zip(answers[x], answers[OURS]))
                         for x in (PIPELINE, TRANSFORMERS5)},
        rows=rows, agreement=agree)
    harness.publish(report, print_table, args.json)


def our_tokenization() -> tuple:
    """(whole, per_word, piece_names) for tokenization_check, with our tokenizer."""
    import tensorflow as tf

    from albert_keras.data.windows import word_pieces
    from albert_keras.data.word_split import split_words
    from albert_keras.tokenizer import AlbertTokenizer
    from albert_keras.vocabulary import check_special_pieces, read_model_proto

    proto = read_model_proto(SPM_MODEL)
    tokenizer = AlbertTokenizer(proto, lower_case=True)
    processor = check_special_pieces(proto)

    def whole(texts):
        return [list(row) for row in tokenizer.tokenize(tf.constant(texts)).to_list()]

    def per_word(context):
        words = [w for w, _, _ in split_words(context)]
        return word_pieces(tokenizer, tf.constant(words, tf.string)).flat_values.numpy().tolist()
    return whole, per_word, lambda ids: [processor.id_to_piece(i) for i in ids]


def analyze(work_dir: str, questions: list, dumps: dict, transformers5_worker) -> dict:
    """agreement() and tokenization_check() of the dumps; transformers5_worker() -> the
    transformers-5+our-extraction worker, asked only if a question needs it."""
    from albert_keras.data.word_split import split_words

    def transformers5_records(indices):
        path = os.path.join(work_dir, f"agreement-{TRANSFORMERS5}.json")
        transformers5_worker().request("agree", indices=indices, path=path)
        with open(path) as f:
            return dict(zip(indices, json.load(f)))
    agree = agreement(dumps, questions, PIPELINE_ARGS["doc_stride"],
                      lambda text: [(s, e) for _, s, e in split_words(text)],
                      transformers5_records)
    agree["tokenization"] = tokenization_check(
        dumps[PIPELINE], questions, PIPELINE_ARGS["doc_stride"], *our_tokenization())
    return agree


def reanalyze(args):
    """--reanalyze REPORT: the agreement of REPORT's run classified again from the
    dumps its run left in --work_dir (no model runs, unless a question needs
    transformers-5+our-extraction's windows); the report is rewritten (or --json)."""
    work_dir = os.path.join(ROOT, args.work_dir)
    report = harness.load_report(args.reanalyze)
    questions = _read_questions(work_dir)
    dumps = {}
    for name in (PIPELINE, OURS):
        with open(os.path.join(work_dir, f"agreement-{name}.json")) as f:
            dumps[name] = json.load(f)
    started = {}

    def transformers5_worker():
        if "worker" not in started:
            env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            script = os.path.relpath(os.path.abspath(__file__), ROOT)
            started["worker"] = harness.Worker(
                f"qa-{TRANSFORMERS5}", [script, "--worker", TRANSFORMERS5, "--work_dir",
                                        work_dir, "--questions", "1"], env)
            started["worker"].answer()
        return started["worker"]
    try:
        report["agreement"] = analyze(work_dir, questions[:len(dumps[OURS])], dumps,
                                      transformers5_worker)
    finally:
        if "worker" in started:
            started["worker"].close()
    report["agreement"]["reanalyzed"] = "python " + " ".join(
        [os.path.relpath(os.path.abspath(__file__), ROOT)] + sys.argv[1:])
    harness.publish(report, print_table, args.json or args.reanalyze)


def window_flops(length: int) -> float:
    """Model FLOPs of one window of `length` real pieces: ALBERT-base's forward
    (harness.forward_flops; padding is not counted)."""
    return harness.forward_flops(dict(SHAPE, vocab_size=5000), 1, length)


# ------------------------------------------------------------------ report
def print_table(report):
    print(f"\n{report['date']}  {report['machine']}\n{report['command']}")
    windows = report["windows"]
    print(f"ALBERT-base shape, vocab 5,000, random weights, float32; windows 384/128/64, "
          f"n_best 20, max answer 30 pieces, SQuAD 2.0 (null threshold 0.0). Timed: "
          f"{report['questions']} sample questions ({windows['ours']} windows ours, "
          f"{windows['pipeline']} the pipeline's), batch 32: {report['batch32_questions']} "
          f"questions a round, {report['rounds']} rounds; matmul ceiling "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["ceiling_gflops"].items()))
    rows = {r["contender"]: r for r in report["rows"]}
    ours = rows[OURS]
    ceiling = report["ceiling_gflops"]["float32"]
    print("| contender | batch 1 p50 ms | p99 ms | batch 32 questions/s | min-max over rounds "
          "| windows | GFLOP/s | of ceiling | ours' throughput over this: ratio of medians "
          "| median of per-round ratios | ours' p50 over this | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    q = report["batch32_questions"]
    for r in report["rows"]:
        low, high = q / max(r["batch32_round_seconds"]), q / min(r["batch32_round_seconds"])
        ratio, paired = harness.paired_ratio(r["batch32_round_seconds"],
                                             ours["batch32_round_seconds"])
        print(f"| {r['contender']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
              f"| {r['questions_per_s']:.2f} | {low:.2f}-{high:.2f} | {r['batch32_windows']} "
              f"| {r['gflops']:.0f} | {100 * r['gflops'] / ceiling:.0f}% | {ratio:.2f}x "
              f"| {paired:.2f}x | {ours['p50_ms'] / r['p50_ms']:.2f}x "
              f"| {r['peak_rss_mib']:.0f} |")
    print("\ntargets:")
    for name in (PIPELINE, TRANSFORMERS5):
        ratio, paired = harness.paired_ratio(rows[name]["batch32_round_seconds"],
                                             ours["batch32_round_seconds"])
        verdict = "met" if min(ratio, paired) >= 2 else "MISSED"
        print(f"- batch 32: ours {ratio:.2f}x the throughput of {name} (ratio of medians), "
              f"{paired:.2f}x (median per-round ratio); target 2x: {verdict}")
    for name in (PIPELINE, TRANSFORMERS5):
        verdict = "met" if ours["p50_ms"] < rows[name]["p50_ms"] else "MISSED"
        print(f"- batch 1: ours p50 {ours['p50_ms']:.0f} ms, {name} {rows[name]['p50_ms']:.0f} "
              f"ms; target lower: {verdict}")
    print(f"\nsame answer text on the {report['questions']} timed questions: " + ", ".join(
        f"{pair} {k}" for pair, k in report["timed_same_text"].items()))
    if report.get("agreement"):
        print_agreement(report["agreement"])


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
              f"for {tok['context_same_whole']} contexts tokenized whole, and for "
              f"{tok['context_same_per_word']} as our windows read them (each word alone: "
              f"{tok['pieces'][1]} pieces in all, the pipeline's {tok['pieces'][0]})")
        for name, ex in tok["examples"].items():
            print(f"  first difference ({name}), {ex['id']}: pipeline {ex['pipeline']}, "
                  f"ours {ex['ours']}")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--questions", type=int, default=32,
                        help="timed questions (a seeded choice of the sample)")
    parser.add_argument("--agreement_questions", type=int, default=0,
                        help="the first N sample questions through the pipeline and ours, "
                             "untimed, and every difference classified (781: all; about "
                             "1 s a question for each on 2 cores)")
    parser.add_argument("--work_dir", default=WORK_DIR,
                        help="model, export and dumps (remade on every run)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--table", default=None, help="only print the table of a --json file")
    parser.add_argument("--reanalyze", default=None,
                        help="classify the agreement of a --json report again from the dumps "
                             "its run left in --work_dir, and rewrite it")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print_table(harness.load_report(args.table))
    elif args.reanalyze:
        reanalyze(args)
    elif args.prepare:
        {"model": prepare_model, "tokenizer": prepare_tokenizer,
         "export": prepare_export}[args.prepare](args.work_dir)
    elif args.worker:
        worker(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
