"""Inference, side by side, ALBERT-base at seq 128: our exported SavedModel (the
"encode" signature) and our Keras AlbertBackbone vs keras-hub AlbertBackbone vs
transformers AlbertModel (PyTorch), at float32 and mixed_bfloat16 (autocast for
PyTorch), with and without XLA for the Keras models.

    python benchmarks/inference.py [--rounds 5] [--latency_calls 20] [--batch_calls 2]
        [--configs REGEX] [--baseline DIR] [--json out.json]

Batch 1: latency p50 / p99 over all timed calls of all rounds. Batch 32: median
seconds per call -> sequences/s. Workers load and warm up once, then the driver
interleaves them round by round (harness.py).

The SavedModel is exported by serving.export.export from a base-size backbone with
random weights: "savedmodel/<precision>/nojit" is the default export (plain TensorFlow
ops), "savedmodel/<precision>/xla" the export with --fusion xla_cpu (XLA-compiled
element-wise kernels between oneDNN's matmuls, which TF Serving runs with
--xla_cpu_compilation_enabled=true). Its vocab_size is that of runs/demo/vocab/spm.model
(5,000 pieces; the export checks that the tokenizer fits the model), not 30,000: the
encode signature takes ids, and the vocabulary size does not change the cost of the
embedding lookup. The other contenders use vocab 30,000; all get ids below 5,000.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402  (this tree's, whatever --baseline is)
from benchmarks.train_step import BASE  # noqa: E402

# A/B runs: a worker may import albert_keras from another tree (see --baseline).
if os.environ.get("ALBERT_CODE_ROOT"):
    sys.path.insert(0, os.environ["ALBERT_CODE_ROOT"])

SPM_MODEL = "runs/demo/vocab/spm.model"
SEQ = 128
BATCHES = (1, 32)


def make_inputs(batch, seq=SEQ, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    segment_ids = np.zeros((batch, seq), "int32")
    segment_ids[:, seq // 2:] = 1
    return {"input_ids": rng.integers(5, 5000, size=(batch, seq)).astype("int32"),
            "segment_ids": segment_ids, "input_mask": np.ones((batch, seq), "int32")}


# ------------------------------------------------------------------ contenders
def export_savedmodel(directory, precision, fusion):
    """Runs in its own process: the dtype policy is global."""
    import keras
    import sentencepiece

    from albert_keras import AlbertBackbone, AlbertConfig
    try:
        from albert_keras.vocabulary import read_model_proto
    except ImportError:  # a --baseline tree that keeps it in the tokenizer module
        from albert_keras.tokenizer import read_model_proto
    from serving.export import export

    keras.config.set_dtype_policy(precision)
    proto = read_model_proto(SPM_MODEL)
    vocab = sentencepiece.SentencePieceProcessor(model_proto=proto).get_piece_size()
    model = AlbertBackbone(AlbertConfig.from_dict(dict(BASE, vocab_size=vocab)))
    try:
        from serving.export import FUSIONS
        name = "fusion"
    except ImportError:  # a --baseline tree that names the fusion "kernels"
        from serving.export import KERNELS as FUSIONS
        name = "kernels"
    if fusion not in FUSIONS:  # a --baseline tree that names its CPU fusion "xla"
        fusion = "xla"
    print(export(model, proto, directory, version=1, max_seq_length=SEQ, **{name: fusion}))


def savedmodel_forward(precision, jit):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel holds)

    directory = tempfile.mkdtemp(prefix="albert-bench-savedmodel-")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--export", directory,
                    "--precision", precision, "--jit", str(int(jit))],
                   check=True, stdout=sys.stderr)
    encode = tf.saved_model.load(os.path.join(directory, "1")).signatures["encode"]

    def forward(inputs):
        features = {name: tf.constant(value) for name, value in inputs.items()}
        return lambda: encode(**features)["sequence_output"].numpy()
    return forward


def ours_forward(precision, jit):
    import keras
    import tensorflow as tf

    from albert_keras import AlbertBackbone, AlbertConfig

    keras.config.set_dtype_policy(precision)
    model = AlbertBackbone(AlbertConfig.from_dict(BASE))
    call = tf.function(lambda f: model(f, training=False)["sequence_output"], jit_compile=jit)

    def forward(inputs):
        features = {name: tf.constant(value) for name, value in inputs.items()}
        return lambda: call(features).numpy()
    return forward


def keras_hub_forward(precision, jit):
    import keras
    import keras_hub
    import tensorflow as tf

    keras.config.set_dtype_policy(precision)
    model = keras_hub.models.AlbertBackbone(
        vocabulary_size=BASE["vocab_size"], num_layers=BASE["num_hidden_layers"],
        num_heads=BASE["num_attention_heads"], embedding_dim=BASE["embedding_size"],
        hidden_dim=BASE["hidden_size"], intermediate_dim=BASE["intermediate_size"],
        dropout=0.0, max_sequence_length=BASE["max_position_embeddings"])
    call = tf.function(lambda f: model(f, training=False)["sequence_output"], jit_compile=jit)

    def forward(inputs):
        features = {"token_ids": tf.constant(inputs["input_ids"]),
                    "segment_ids": tf.constant(inputs["segment_ids"]),
                    "padding_mask": tf.constant(inputs["input_mask"].astype(bool))}
        return lambda: call(features).numpy()
    return forward


def transformers_forward(precision, jit):
    import contextlib

    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    config = transformers.AlbertConfig(
        vocab_size=BASE["vocab_size"], embedding_size=BASE["embedding_size"],
        hidden_size=BASE["hidden_size"], num_hidden_layers=BASE["num_hidden_layers"],
        num_attention_heads=BASE["num_attention_heads"],
        intermediate_size=BASE["intermediate_size"], hidden_act="gelu_new")
    model = transformers.AlbertModel(config).eval()
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) \
        if precision == "mixed_bfloat16" else contextlib.nullcontext

    def forward(inputs):
        features = dict(input_ids=torch.as_tensor(inputs["input_ids"], dtype=torch.long),
                        token_type_ids=torch.as_tensor(inputs["segment_ids"], dtype=torch.long),
                        attention_mask=torch.as_tensor(inputs["input_mask"], dtype=torch.long))

        def run():
            with torch.inference_mode(), autocast():
                return model(**features).last_hidden_state.float().numpy()
        return run
    return forward


CONTENDERS = {"savedmodel": savedmodel_forward, "ours": ours_forward,
              "keras_hub": keras_hub_forward, "transformers": transformers_forward}


def worker(args):
    if args.worker == "ceiling":
        harness.matmul_ceiling_worker()
        return
    forward = CONTENDERS[args.worker](args.precision, bool(args.jit))
    calls = {batch: forward(make_inputs(batch)) for batch in BATCHES}
    for call in calls.values():  # warm-up, tracing and XLA compilation included
        for _ in range(2):
            call()
    harness.reply({"ready": True})

    def run(latency_calls, batch_calls):
        return {"batch1": harness.time_calls(calls[1], latency_calls),
                "batch32": harness.time_calls(calls[32], batch_calls)}
    harness.serve({"run": run})


# ------------------------------------------------------------------ driver
def configurations(pattern, baseline=None):
    """(label, contender, precision, jit, env); with a baseline tree, each of our
    configurations also runs as "baseline-<label>" importing albert_keras and serving
    from it (the SavedModel then is that tree's export)."""
    grid = [("savedmodel", (0, 1)), ("ours", (0, 1)), ("keras_hub", (0, 1)), ("transformers", (0,))]
    for name, jits in grid:
        for precision in ("float32", "mixed_bfloat16"):
            for jit in jits:
                label = f"{name}/{precision}/{'xla' if jit else 'nojit'}"
                if re.search(pattern, label):
                    yield label, name, precision, jit, {}
                    if baseline and name in ("savedmodel", "ours"):
                        yield ("baseline-" + label, name, precision, jit,
                               {"ALBERT_CODE_ROOT": os.path.abspath(baseline)})


def drive(args):
    script = os.path.relpath(os.path.abspath(__file__), harness.ROOT)
    header = harness.run_header(script)
    workers = {"ceiling": harness.Worker("infer-ceiling", [script, "--worker", "ceiling"])}
    meta = {}
    for label, name, precision, jit, env in configurations(args.configs, args.baseline):
        workers[label] = harness.Worker(
            "infer-" + label.replace("/", "-"),
            [script, "--worker", name, "--precision", precision, "--jit", str(jit)], env=env)
        meta[label] = precision
    for label, w in workers.items():
        print(f"ready {label}: {w.answer()}", flush=True)

    latency = {label: [] for label in meta}
    batch_times = {label: [] for label in meta}
    ceiling = {"float32": [], "bfloat16": []}
    for r in range(args.rounds):
        for label, w in workers.items():
            if label == "ceiling":
                for dtype, values in w.request("run", n_steps=3)["times"].items():
                    ceiling[dtype].extend(values)
                continue
            result = w.request("run", latency_calls=args.latency_calls,
                               batch_calls=args.batch_calls)
            latency[label].extend(result["batch1"])
            batch_times[label].append(harness.median(result["batch32"]))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {harness.median(latency[k]) * 1e3:.0f} ms / {batch_times[k][-1]:.2f} s"
            for k in meta), flush=True)
    rss = {label: w.close()["peak_rss_mib"] for label, w in workers.items()}

    n = 4096
    ceiling_gflops = {dtype: 2 * n**3 / harness.median(v) / 1e9 for dtype, v in ceiling.items()}
    flops32 = harness.forward_flops(BASE, 32, SEQ)
    rows = []
    for label, precision in meta.items():
        sec = harness.median(batch_times[label])
        gflops = flops32 / sec / 1e9
        ceil = ceiling_gflops["float32" if precision == "float32" else "bfloat16"]
        rows.append(dict(config=label, p50_ms=1e3 * harness.percentile(latency[label], 50),
                         p99_ms=1e3 * harness.percentile(latency[label], 99),
                         latency_samples=len(latency[label]), batch32_s=sec,
                         seq_per_s=32 / sec, gflops=gflops, ceiling_fraction=gflops / ceil,
                         peak_rss_mib=rss[label], batch32_round_medians=batch_times[label]))
    report = dict(header, seq=SEQ,
                  rounds=args.rounds, forward_gflop_batch32=flops32 / 1e9,
                  ceiling_gflops=ceiling_gflops, rows=rows)
    harness.publish(report, print_table, args.json)


def print_table(report):
    print(f"\n{report['date']}  {report['machine']}\n{report['command']}")
    print(f"seq {report['seq']}; batch 32 forward {report['forward_gflop_batch32']:.0f} GFLOP; "
          "matmul ceiling " + ", ".join(f"{k} {v:.0f} GFLOP/s"
                                        for k, v in report["ceiling_gflops"].items()))
    hub = [r for r in report["rows"] if r["config"].startswith("keras_hub")]
    fastest_hub = max(hub, key=lambda r: r["seq_per_s"]) if hub else None
    best_p50 = min((r["p50_ms"] for r in hub), default=float("nan"))
    print("| config | batch 1 p50 ms | p99 ms | batch 32 s | seq/s | GFLOP/s | of ceiling "
          "| seq/s vs keras-hub best: ratio of medians | median of per-round ratios "
          "| p50 vs keras-hub best | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in report["rows"]:
        ratio, paired = (f"{x:.2f}x" for x in _throughput_ratio(fastest_hub, r)) \
            if fastest_hub else ("-", "-")
        print(f"| {r['config']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['batch32_s']:.3f} "
              f"| {r['seq_per_s']:.1f} | {r['gflops']:.0f} | {100 * r['ceiling_fraction']:.0f}% "
              f"| {ratio} | {paired} | {r['p50_ms'] / best_p50:.2f}x "
              f"| {r['peak_rss_mib']:.0f} |")
    print_targets(report, fastest_hub, best_p50)


def _throughput_ratio(slow, fast):
    """(ratio of medians, median per-round ratio) of batch-32 throughput, fast over slow."""
    return harness.paired_ratio(slow["batch32_round_medians"], fast["batch32_round_medians"])


def print_targets(report, fastest_hub, best_hub_p50):
    """Issue 6's inference targets, read off the rows of this run, for each export."""
    exports = [r for r in report["rows"] if r["config"].startswith("savedmodel/")]
    if not exports or not fastest_hub:
        return
    print("\ntargets:")
    for export in exports:
        print(f"- batch 32: {export['config']} vs keras-hub fastest {fastest_hub['config']}: "
              "%.2fx of medians, %.2fx median per-round ratio (target 1.3x)"
              % _throughput_ratio(fastest_hub, export))
    for export in exports:
        print(f"- batch 1: {export['config']} p50 {export['p50_ms']:.1f} ms vs keras-hub's "
              f"lowest {best_hub_p50:.1f} ms (target: lower)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency_calls", type=int, default=20)
    parser.add_argument("--batch_calls", type=int, default=2)
    parser.add_argument("--configs", default="", help="regex: run only matching configs")
    parser.add_argument("--json", default=None)
    parser.add_argument("--baseline", default=None,
                        help="a checkout of another commit: its exports and model run beside ours")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--export", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--table", default=None, help="only print the table of a --json file")
    args = parser.parse_args()
    if args.table:
        print_table(harness.load_report(args.table))
    elif args.export:
        export_savedmodel(args.export, args.precision, "xla_cpu" if args.jit else "plain")
    elif args.worker:
        worker(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
