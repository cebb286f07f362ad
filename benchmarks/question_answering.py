"""Question answering, side by side: our exported `answer` signature against what
transformers users run on the same converted weights (PyTorch, CPU, float32, the same
window settings), and how often the answers agree.

    python benchmarks/question_answering.py [--rounds 4] [--questions 32]
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
  project's windows (tasks/question_answering/windows.py, as a tf.function), transformers 5's
  AlbertForQuestionAnswering on them (padding cut to the longest window, as ours does)
  and the project's Python answer extraction (tasks/question_answering/answers.extract_answers_python).

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
the same rounds; each round starts with the next worker in turn (4 rounds put every
worker in every place once). Each worker first makes every timed call once (warm-up).
The default run (4 rounds of 32 questions) takes about 13 minutes on 2 cores.

Agreement (untimed, after the rounds; --agreement_questions N, 781 for the whole
sample: about 1 s a question for each of the two contenders on 2 cores, 30 minutes for
all 781): the first N questions through the pipeline and ours at batch 32; the share
with the same answer text, and every difference put down to the first of a chain of
single changes that turns the pipeline's answer into ours (LADDER): the pipeline's
postprocess re-run on its own windows and logits (recorded by a forward hook), then our
extraction's rules one at a time on those same logits, then our windows
(transformers-5+our-extraction, asked only for the questions that get that far) and
last TensorFlow's forward pass (ours). Also compared: the pipeline's pieces with our
tokenizer's as our windows read the text (tokenized whole), and the pieces' character
spans. The chain and the classification: benchmarks/qa_agreement.py. Random weights:
see BENCHMARKS.md for what the figure does and does not say.
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
from benchmarks.qa_agreement import (  # noqa: E402  (numpy: every env has it)
    CONTENDERS, OURS, PIPELINE, TRANSFORMERS5, agreement, print_agreement,
    tokenization_check)

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
    from albert_keras.tasks.question_answering.answers import AnswerSettings
    from albert_keras.tasks.question_answering.settings import AnsweringSettings
    from albert_keras.tasks.question_answering.windows import WindowSettings
    from albert_keras.vocabulary import read_model_proto
    from serving.export import export

    model = from_transformers(os.path.join(work_dir, "hf"))
    model.settings = AnsweringSettings(WindowSettings(**WINDOWS), AnswerSettings(**ANSWERS))
    print(export(model, read_model_proto(SPM_MODEL), os.path.join(work_dir, "export"),
                 version=1, max_seq_length=WINDOWS["max_seq_length"]))


def sample_questions(path=SQUAD_SAMPLE) -> list:
    from albert_keras.tasks.question_answering.squad_files import read_squad
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

    from albert_keras.tasks.question_answering.answers import AnswerSettings, extract_answers_python
    from albert_keras.tasks.question_answering.windows import WindowSettings, squad_windows
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
        python = python457 if name == PIPELINE else sys.executable
        workers[name] = harness.Worker(f"qa-{name}", argv, env, python=python)
    ready = {}
    for name, w in workers.items():
        ready[name] = w.answer()
        print(f"ready {name}", flush=True)

    latency = {name: [] for name in CONTENDERS}
    rounds = {name: [] for name in CONTENDERS}
    ceiling = {"float32": [], "bfloat16": []}
    batch_questions = 0
    order = list(workers)
    for r in range(args.rounds):
        # Each round starts one place further along, so that no contender always runs
        # right after the same one (the ceiling's large matmuls, say).
        for name in order[r % len(order):] + order[:r % len(order)]:
            w = workers[name]
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


def our_tokenization() -> dict:
    """Our tokenizer as our windows use it, for tokenization_check: "tokenize" (the
    questions), "with_offsets" (the contexts: ids and code-point spans), "piece_names",
    and "space_id", the lone "\u2581" piece's id (None if the vocabulary lacks it)."""
    import tensorflow as tf

    from albert_keras.tokenizer import AlbertTokenizer
    from albert_keras.vocabulary import check_special_pieces, read_model_proto

    proto = read_model_proto(SPM_MODEL)
    tokenizer = AlbertTokenizer(proto, lower_case=True)
    processor = check_special_pieces(proto)
    space = processor.piece_to_id("\u2581")  # the unknown piece's id when it has none

    def tokenize(texts):
        return tokenizer.tokenize(tf.constant(texts, tf.string)).to_list()

    def with_offsets(texts):
        ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(texts, tf.string))
        return list(zip(ids.to_list(), starts.to_list(), ends.to_list()))
    return dict(tokenize=tokenize, with_offsets=with_offsets,
                piece_names=lambda ids: [processor.id_to_piece(i) for i in ids],
                space_id=space if processor.id_to_piece(space) == "\u2581" else None)


def analyze(work_dir: str, questions: list, dumps: dict, transformers5_worker) -> dict:
    """agreement() and tokenization_check() of the dumps; transformers5_worker() -> the
    transformers-5+our-extraction worker, asked only if a question needs it."""
    def transformers5_records(indices):
        path = os.path.join(work_dir, f"agreement-{TRANSFORMERS5}.json")
        transformers5_worker().request("agree", indices=indices, path=path)
        with open(path) as f:
            return dict(zip(indices, json.load(f)))
    ours = our_tokenization()
    stride = PIPELINE_ARGS["doc_stride"]
    agree = agreement(dumps, questions, stride, ours["space_id"], transformers5_records)
    agree["tokenization"] = tokenization_check(dumps[PIPELINE], questions, stride, ours)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
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
