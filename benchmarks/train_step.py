"""Training step, side by side: our AlbertPretrainer (MLM + SOP, LAMB) vs keras-hub
AlbertMaskedLM (AdamW) vs transformers AlbertForPreTraining (AdamW), ALBERT-base.

    python benchmarks/train_step.py [--rounds 6] [--steps 2] [--batch 8] [--seq 128]
        [--only ours,keras_hub,transformers] [--json out.json]

Every contender trains on the same fixed batch (batch x seq, full sequences, 20 masked
positions per row) in its own worker process, at float32 and mixed_bfloat16, with and
without XLA (jit_compile) for the Keras ones. Workers build and warm up (3 steps,
compilation included) before timing; then the driver interleaves them in rounds
(see harness.py). Reported: median seconds per step, sequences/s, model GFLOP/s (3x the
forward FLOPs, MLM head at the masked positions only) as a fraction of the matmul
ceiling measured by a worker of the same run, and each worker's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import harness  # noqa: E402  (this tree's, whatever --baseline is)

# A/B runs: a worker may import albert_keras from another tree (see --baseline).
if os.environ.get("ALBERT_CODE_ROOT"):
    sys.path.insert(0, os.environ["ALBERT_CODE_ROOT"])

BASE = dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
MASKED = 20
WARMUP_STEPS = 3


def make_batch(batch, seq, masked=MASKED, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(5, BASE["vocab_size"], size=(batch, seq)).astype("int32")
    segment_ids = np.zeros((batch, seq), "int32")
    segment_ids[:, seq // 2:] = 1
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), masked, replace=False)
                                  for _ in range(batch)]), axis=1).astype("int32")
    return {
        "input_ids": input_ids, "segment_ids": segment_ids,
        "input_mask": np.ones((batch, seq), "int32"), "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(5, BASE["vocab_size"], size=(batch, masked)).astype("int32"),
        "masked_lm_weights": np.ones((batch, masked), "float32"),
        "next_sentence_labels": rng.integers(0, 2, size=(batch, 1)).astype("int32"),
    }


def host_fusion() -> dict:
    """The host's fusion for training, as the training programs' "auto" picks it, as the
    keyword argument the (maybe --baseline) tree's config and optimizer take."""
    try:
        from albert_keras.layers.fused_ops import fusion_for_this_host
        return {"fusion": fusion_for_this_host()}
    except ImportError:
        pass
    try:  # a --baseline tree that names the fusion "kernels"
        from albert_keras.layers.fused_ops import kernels_for_this_host
        return {"kernels": kernels_for_this_host()}
    except ImportError:  # a --baseline tree whose kernels are a process-wide setting
        return {}


# ------------------------------------------------------------------ contenders
def ours_step(batch, precision, jit):
    import keras
    import tensorflow as tf

    from albert_keras import AlbertConfig, AlbertPretrainer
    from albert_keras.optimization import create_optimizer

    keras.config.set_dtype_policy(precision)
    fusion = host_fusion()
    model = AlbertPretrainer(AlbertConfig.from_dict(dict(BASE, **fusion)))
    model.compile(optimizer=create_optimizer("lamb", total_steps=100000, warmup_steps=100,
                                             **fusion), jit_compile=jit)
    data = {name: tf.constant(value) for name, value in batch.items()}
    return lambda: model.train_on_batch(data)


def keras_hub_step(batch, precision, jit, cfg=BASE):
    """keras-hub's AlbertMaskedLM of the shape cfg (BASE's keys) on `batch`."""
    import keras
    import keras_hub
    import tensorflow as tf

    keras.config.set_dtype_policy(precision)
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=cfg["vocab_size"], num_layers=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"], embedding_dim=cfg["embedding_size"],
        hidden_dim=cfg["hidden_size"], intermediate_dim=cfg["intermediate_size"],
        dropout=0.0, max_sequence_length=cfg["max_position_embeddings"])
    model = keras_hub.models.AlbertMaskedLM(backbone, preprocessor=None)
    # keras-hub's own compile defaults (sparse CE from logits, weighted accuracy), AdamW.
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=jit)
    x = {"token_ids": tf.constant(batch["input_ids"]),
         "segment_ids": tf.constant(batch["segment_ids"]),
         "padding_mask": tf.constant(batch["input_mask"].astype(bool)),
         "mask_positions": tf.constant(batch["masked_lm_positions"])}
    y = tf.constant(batch["masked_lm_ids"])
    weights = tf.constant(batch["masked_lm_weights"])
    return lambda: model.train_on_batch(x, y, sample_weight=weights)


def transformers_step(batch, precision, jit):
    import contextlib

    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    config = transformers.AlbertConfig(
        vocab_size=BASE["vocab_size"], embedding_size=BASE["embedding_size"],
        hidden_size=BASE["hidden_size"], num_hidden_layers=BASE["num_hidden_layers"],
        num_attention_heads=BASE["num_attention_heads"],
        intermediate_size=BASE["intermediate_size"], hidden_act="gelu_new",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)
    model = transformers.AlbertForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.full(batch["input_ids"].shape, -100, dtype=torch.long)
    positions = torch.as_tensor(batch["masked_lm_positions"], dtype=torch.long)
    labels.scatter_(1, positions, torch.as_tensor(batch["masked_lm_ids"], dtype=torch.long))
    inputs = dict(input_ids=torch.as_tensor(batch["input_ids"], dtype=torch.long),
                  token_type_ids=torch.as_tensor(batch["segment_ids"], dtype=torch.long),
                  attention_mask=torch.as_tensor(batch["input_mask"], dtype=torch.long),
                  labels=labels,
                  sentence_order_label=torch.as_tensor(batch["next_sentence_labels"][:, 0],
                                                       dtype=torch.long))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) \
        if precision == "mixed_bfloat16" else contextlib.nullcontext

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


CONTENDERS = {"ours": ours_step, "keras_hub": keras_hub_step,
              "transformers": transformers_step}


def worker(args):
    if args.worker == "ceiling":
        harness.matmul_ceiling_worker()
        return
    batch = make_batch(args.batch, args.seq)
    step = CONTENDERS[args.worker](batch, args.precision, bool(args.jit))
    for _ in range(WARMUP_STEPS):
        step()
    harness.reply({"ready": True, "peak_rss_mib": harness.peak_rss_mib()})
    harness.serve({"run": lambda n_steps: {"times": harness.time_calls(step, n_steps)}})


# ------------------------------------------------------------------ driver
def configurations(only, pattern, baseline):
    """(label, contender, precision, jit, env); with a baseline tree, each of our
    configurations also runs as "baseline/..." importing albert_keras from it."""
    for name in only:
        for precision in ("float32", "mixed_bfloat16"):
            for jit in ((0, 1) if name != "transformers" else (0,)):
                label = f"{name}/{precision}/{'xla' if jit else 'nojit'}"
                if not re.search(pattern, label):
                    continue
                yield label, name, precision, jit, {}
                if baseline and name == "ours":
                    yield ("baseline" + label[4:], name, precision, jit,
                           {"ALBERT_CODE_ROOT": os.path.abspath(baseline)})


def drive(args):
    only = args.only.split(",")
    script = os.path.relpath(os.path.abspath(__file__), harness.ROOT)
    header = harness.run_header(script)
    common = ["--batch", str(args.batch), "--seq", str(args.seq)]
    workers = {"ceiling": harness.Worker("train-ceiling", [script, "--worker", "ceiling"])}
    meta = {}
    for label, name, precision, jit, env in configurations(only, args.configs, args.baseline):
        workers[label] = harness.Worker(
            "train-" + label.replace("/", "-"),
            [script, "--worker", name, "--precision", precision, "--jit", str(jit)] + common,
            env=env)
        meta[label] = (name, precision, jit)
    for label, w in workers.items():  # they build and warm up in parallel
        print(f"ready {label}: {w.answer()}", flush=True)

    times = {label: [] for label in workers}
    ceiling = {"float32": [], "bfloat16": []}
    for r in range(args.rounds):
        for label, w in workers.items():
            result = w.request("run", n_steps=args.steps if label != "ceiling" else 3)
            if label == "ceiling":
                for dtype, values in result["times"].items():
                    ceiling[dtype].extend(values)
            else:
                times[label].append(harness.median(result["times"]))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {v[-1]:.2f}" for k, v in times.items() if v), flush=True)
    rss = {label: w.close()["peak_rss_mib"] for label, w in workers.items()}

    n = 4096
    ceiling_gflops = {dtype: 2 * n**3 / harness.median(v) / 1e9 for dtype, v in ceiling.items()}
    step_flops = 3 * harness.forward_flops(BASE, args.batch, args.seq, MASKED, heads=True)
    rows = []
    for label, (name, precision, jit) in meta.items():
        sec = harness.median(times[label])
        gflops = step_flops / sec / 1e9
        ceil = ceiling_gflops["float32" if precision == "float32" else "bfloat16"]
        rows.append(dict(config=label, seconds=sec, spread=[min(times[label]), max(times[label])],
                         seq_per_s=args.batch / sec, gflops=gflops, ceiling_fraction=gflops / ceil,
                         peak_rss_mib=rss[label], round_medians=times[label]))
    report = dict(header,
                  batch=args.batch, seq=args.seq, masked=MASKED, rounds=args.rounds,
                  steps_per_round=args.steps, step_gflop=step_flops / 1e9,
                  ceiling_gflops=ceiling_gflops, rows=rows)
    harness.publish(report, print_table, args.json)


def print_table(report):
    print(f"\n{report['date']}  {report['machine']}\n{report['command']}")
    print(f"batch {report['batch']} x seq {report['seq']}, {report['masked']} masked, "
          f"{report['step_gflop']:.0f} GFLOP per step; matmul ceiling "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["ceiling_gflops"].items()))
    rows = report["rows"]
    hub = [r for r in rows if r["config"].startswith("keras_hub")]
    fastest_hub = min(hub, key=lambda r: r["seconds"]) if hub else None
    print("| config | s/step (median) | min-max over rounds | seq/s | GFLOP/s | of ceiling "
          "| vs keras-hub fastest: ratio of medians | median of per-round ratios "
          "| peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        # Paired: rounds are where load from other jobs is most alike.
        ratio, paired = (f"{x:.2f}x" for x in _paired_ratio(fastest_hub, r)) \
            if fastest_hub else ("-", "-")
        print(f"| {r['config']} | {r['seconds']:.3f} | {r['spread'][0]:.2f}-{r['spread'][1]:.2f} "
              f"| {r['seq_per_s']:.2f} | {r['gflops']:.0f} | {100 * r['ceiling_fraction']:.0f}% "
              f"| {ratio} | {paired} | {r['peak_rss_mib']:.0f} |")
    print_against_baseline(rows)
    print_targets(report, fastest_hub)


def print_against_baseline(rows):
    """Each of our configurations against the same one of the --baseline tree."""
    by_config = {r["config"]: r for r in rows}
    pairs = [(r, by_config["baseline" + r["config"][4:]]) for r in rows
             if r["config"].startswith("ours/") and "baseline" + r["config"][4:] in by_config]
    if pairs:
        print("\nagainst the baseline tree (above 1: this tree is faster):")
    for ours, baseline in pairs:
        print(f"- {ours['config']}: %.3fx of medians, %.3fx median per-round ratio"
              % _paired_ratio(baseline, ours))


def _paired_ratio(slow, fast):
    """(ratio of medians, median of per-round ratios): how many times faster `fast` is."""
    return harness.paired_ratio(slow["round_medians"], fast["round_medians"])


def print_targets(report, best_hub):
    """Issue 6's training targets, read off the rows of this run."""
    rows = {r["config"]: r for r in report["rows"]}
    ours = [r for r in rows.values() if r["config"].startswith("ours/")]
    if not ours or not best_hub:
        return
    print("\ntargets:")
    best = min(ours, key=lambda r: r["seconds"])
    print(f"- fastest {best['config']} vs keras-hub fastest {best_hub['config']}: "
          "%.2fx of medians, %.2fx median per-round ratio (target 1.3x)"
          % _paired_ratio(best_hub, best))
    ours32 = [r for r in ours if "/float32/" in r["config"]]
    if ours32 and "keras_hub/float32/xla" in rows:
        best32 = min(ours32, key=lambda r: r["seconds"])
        print(f"- float32: {best32['config']} vs keras_hub/float32/xla: %.2fx of medians, "
              "%.2fx median per-round ratio (target 1.1x)"
              % _paired_ratio(rows["keras_hub/float32/xla"], best32))
        print(f"- {best32['config']} of the float32 ceiling: "
              f"{100 * best32['ceiling_fraction']:.0f}% in model FLOPs (target 80%)")

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per contender per round")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--only", default="ours,keras_hub,transformers")
    parser.add_argument("--configs", default="", help="regex: run only matching configs")
    parser.add_argument("--baseline", default=None,
                        help="a directory holding another albert_keras to A/B against")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--table", default=None, help="only print the table of a --json file")
    harness.dispatch(parser.parse_args(), print_table, worker, drive)


if __name__ == "__main__":
    main()
