"""Activation memory and step time of a pretraining step with and without remat "block",
and keras-hub's ALBERT at the same batch, for ALBERT-large and -xlarge.

    python benchmarks/remat_memory.py [--sizes large,xlarge] [--batch large=4,xlarge=2]
        [--seq 512] [--rounds 2] [--precision float32] [--fusion auto] [--jit] [--only_ours]
        [--json out.json]

For each size, worker processes (see harness.py) build their model and train one step
to warm up (tracing included); ours with and without remat are then interleaved in
rounds of one step each, and keras-hub runs after them (GROUPS). Sizes run one after
the other. The time of remat "block" against "none" is the median of per-round ratios;
keras-hub's, a ratio of medians.
Measured per step, from TensorFlow's CPU allocator (tf.config.experimental
.get_memory_info): "held" is what is allocated before the step (weights, optimizer
moments, the batch); "activation" is the step's peak minus that: activations kept for
the backward pass, gradients and temporaries. Also the process's peak RSS.
Ours: AlbertPretrainer (MLM + SOP, LAMB, --fusion: by default the host's fusion as
"auto" picks them);
keras-hub: AlbertMaskedLM (MLM only, AdamW), both with 20 masked positions per row.
--jit compiles our steps whole with XLA (jit_compile), where the training programs
refuse remat: this shows why.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from benchmarks.train_step import BASE, MASKED, keras_hub_step, make_batch  # noqa: E402

MIB = 2 ** 20


def allocator_step(step):
    """Runs one step; (seconds, bytes held before it, peak bytes during it)."""
    import time

    import tensorflow as tf
    held = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.config.experimental.reset_memory_stats("CPU:0")
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    return seconds, held, peak


def ours_step(size, remat, batch, precision, jit=False, fusion="auto"):
    import keras
    import tensorflow as tf

    from albert_keras import AlbertConfig, AlbertPretrainer
    from albert_keras.layers.fused_ops import resolve_fusion
    from albert_keras.optimization import create_optimizer

    keras.config.set_dtype_policy(precision)
    fusion = resolve_fusion(fusion)
    config = AlbertConfig.from_preset(size, fusion=fusion, remat=remat)
    model = AlbertPretrainer(config)
    model.compile(optimizer=create_optimizer("lamb", total_steps=1000, warmup_steps=10,
                                             fusion=fusion), jit_compile=jit)
    data = {name: tf.constant(value) for name, value in batch.items()}
    return lambda: model.train_on_batch(data)


def worker(args):
    if args.worker == "ceiling":
        harness.matmul_ceiling_worker()
        return
    batch = make_batch(int(args.batch), args.seq)
    if args.worker == "keras_hub":
        from albert_keras import AlbertConfig
        config = AlbertConfig.from_preset(args.size).to_dict()
        step = keras_hub_step(batch, args.precision, False, {k: config[k] for k in BASE})
    else:
        step = ours_step(args.size, args.worker.split("_", 1)[1], batch, args.precision,
                         args.jit, args.fusion)
    seconds, held, peak = allocator_step(step)  # warm-up: tracing and first allocations
    harness.reply({"ready": True, "warmup_seconds": seconds})

    def run():
        seconds, held, peak = allocator_step(step)
        return {"seconds": seconds, "held_mib": held / MIB, "activation_mib": (peak - held) / MIB}

    harness.serve({"run": run})


# Workers alive at the same time, interleaved round by round. keras-hub runs after ours
# have exited: three large models' peaks at once would not fit in this machine's memory.
GROUPS = (("ours_none", "ours_block"), ("keras_hub",))


def run_group(script, group, size, batch, args, ceiling_worker, ceiling):
    workers = {}
    for name in group:
        workers[name] = harness.Worker(
            f"remat-{size}-{name}",
            [script, "--worker", name, "--size", size, "--batch", str(batch),
             "--seq", str(args.seq), "--precision", args.precision]
            + ["--fusion", args.fusion] + (["--jit"] if args.jit else []))
        # One at a time: building and warming up in parallel would add their peaks.
        print(f"ready {size} {name}: {workers[name].answer()}", flush=True)
    results = {name: [] for name in group}
    for r in range(args.rounds):
        for name, w in workers.items():
            results[name].append(w.request("run"))
        for dtype, values in ceiling_worker.request("run", n_steps=2)["times"].items():
            ceiling[dtype].extend(values)
        print(f"{size} round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v[-1]['seconds']:.1f} s {v[-1]['activation_mib']:.0f} MiB"
            for k, v in results.items()), flush=True)
    rows = []
    for name, w in workers.items():
        rss = w.close()["peak_rss_mib"]
        runs = results[name]
        rows.append(dict(
            size=size, contender=name, batch=batch,
            seconds=harness.median([x["seconds"] for x in runs]),
            round_seconds=[x["seconds"] for x in runs],
            held_mib=harness.median([x["held_mib"] for x in runs]),
            activation_mib=max(x["activation_mib"] for x in runs),
            peak_rss_mib=rss))
    return rows


def drive(args):
    script = os.path.relpath(os.path.abspath(__file__), harness.ROOT)
    header = harness.run_header(script)
    batches = dict(item.split("=") for item in args.batch.split(","))
    ceiling_worker = harness.Worker("remat-ceiling", [script, "--worker", "ceiling"])
    ceiling_worker.answer()
    ceiling = {"float32": [], "bfloat16": []}
    rows = []
    for size in args.sizes.split(","):
        batch = int(batches[size])
        for group in GROUPS[:1] if args.only_ours else GROUPS:
            rows.extend(run_group(script, group, size, batch, args, ceiling_worker, ceiling))
    ceiling_worker.close()
    n = 4096
    report = dict(header, seq=args.seq, masked=MASKED, precision=args.precision, jit=args.jit,
                  fusion=args.fusion,
                  rounds=args.rounds,
                  ceiling_gflops={k: 2 * n ** 3 / harness.median(v) / 1e9
                                  for k, v in ceiling.items()},
                  rows=rows)
    harness.publish(report, print_table, args.json)


def print_table(report):
    print(f"\n{report['date']}  {report['machine']}\n{report['command']}")
    print(f"seq {report['seq']}, {report['masked']} masked positions per row, "
          f"{report['precision']}, fusion {report.get('fusion', 'auto')}, "
          f"{'XLA (jit_compile), ' if report.get('jit') else ''}"
          f"{report['rounds']} rounds; matmul ceiling "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["ceiling_gflops"].items()))
    print("| model | batch | contender | s/step (median) | held MiB | activation MiB "
          "| peak RSS MiB | activation vs remat none | time vs remat none |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in dict.fromkeys(r["size"] for r in report["rows"]):
        rows = {r["contender"]: r for r in report["rows"] if r["size"] == size}
        plain = rows["ours_none"]
        for name, r in rows.items():
            memory = r["activation_mib"] / plain["activation_mib"]
            if name == "ours_block":  # interleaved with remat none: per-round ratios
                time_ratio = harness.median([a / b for a, b in zip(r["round_seconds"],
                                                                    plain["round_seconds"])])
            else:  # run after it: ratio of medians
                time_ratio = r["seconds"] / plain["seconds"]
            label = {"ours_none": "ours, remat none", "ours_block": "ours, remat block",
                     "keras_hub": "keras-hub AlbertMaskedLM"}[name]
            print(f"| {size} | {r['batch']} | {label} | {r['seconds']:.1f} | "
                  f"{r['held_mib']:.0f} | {r['activation_mib']:.0f} | {r['peak_rss_mib']:.0f} "
                  f"| {100 * memory:.0f}% | {time_ratio:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="large,xlarge")
    parser.add_argument("--batch", default="large=4,xlarge=2",
                        help="sequences per step for each size")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--fusion", default="auto", help="our models' fusion (auto, plain, ...)")
    parser.add_argument("--jit", action="store_true", help="our steps with jit_compile")
    parser.add_argument("--only_ours", action="store_true", help="skip keras-hub")
    parser.add_argument("--json")
    parser.add_argument("--table", help="print the table of a --json report and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    harness.dispatch(parser.parse_args(), print_table, worker, drive)


if __name__ == "__main__":
    main()
