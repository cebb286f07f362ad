"""On paper: time to train the reference recipe (batch 4096, seq 512, 125k steps,
20 masked positions) for ALBERT base and xxlarge, from FLOP counts; and the micro-batch,
gradient accumulation and remat setting that fit the recipe on 8 devices of 16 or 80 GB.

    python benchmarks/scale_estimate.py

Training FLOPs = 3 x forward (the backward pass costs two forwards). Time = FLOPs /
(chips x peak bf16 dense FLOP/s x an assumed model-FLOP utilization). Also prints what
a data-parallel run moves per step: the gradient all-reduce volume (ALBERT shares one
layer's weights across all layers, so the gradient is that of the unique weights).
No measurement here: the peaks are vendor datasheet figures, the utilizations assumptions.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import forward_flops  # noqa: E402

BATCH, SEQ, STEPS, MASKED = 4096, 512, 125_000, 20
MODELS = {
    "base": dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=3072),
    "xxlarge": dict(vocab_size=30000, embedding_size=128, hidden_size=4096, num_hidden_layers=12,
                    num_attention_heads=64, intermediate_size=16384),
}
# (name, chips, peak bf16 dense TFLOP/s per chip)
SETUPS = [("8x A100 (1 worker)", 8, 312), ("64x A100 (8 workers x 8)", 64, 312),
          ("64x H100 SXM (8 workers x 8)", 64, 989), ("TPU v3-64 (64 chips)", 64, 123),
          ("TPU v4-128 (128 chips)", 128, 275), ("TPU v3-512 (512 chips)", 512, 123)]
MFU = {"base": 0.35, "xxlarge": 0.45}  # small matmuls (H=768) use accelerators less well


def unique_params(cfg):
    h, i, e, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["embedding_size"], cfg["vocab_size"]
    embedding = (v + 2 + 512) * e + 2 * e + e * h + h
    layer = 4 * (h * h + h) + 2 * h + h * i + i + i * h + h + 2 * h
    heads = h * h + h + h * e + e + 2 * e + v + h * 2 + 2  # pooler, MLM dense+LN+bias, SOP
    return embedding + layer + heads


def activation_gib(cfg, per_replica_batch):
    """Stored activations per replica in bf16 without recomputation, per layer
    s*b*h*(34 + 5*a*s/h) bytes (Korthikanti et al. 2022), times the 12 layer applications:
    sharing weights does not share activations."""
    h, a, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    return layers * SEQ * per_replica_batch * h * (34 + 5 * a * SEQ / h) / 2**30


def layer_params(cfg):
    """The weights one encoder block holds (shared by all layers in ALBERT)."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    return 4 * (h * h + h) + 2 * h + h * i + i + i * h + h + 2 * h


def device_gib(cfg, micro_batch, remat, accumulate):
    """Memory of one replica training in mixed bf16 with LAMB, in GiB, by part:
    - states: float32 weights, LAMB's two moments, the gradient: 16 bytes a parameter;
      with accumulation, the running sum of the micro-batches' gradients: 4 more;
    - per-use gradients of the shared block (bf16, fused kernels, the training default):
      remat "none" sums the L layers' gradients of the shared kernels at the end (L
      copies alive), "block" as they come (one copy and a float32 running sum);
    - activations of one micro-batch: "none" stores L layer applications
      (activation_gib); "block" stores each block's bf16 input (2 s b h bytes a layer)
      plus one block's full activations while it is recomputed."""
    h, a, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    params = unique_params(cfg)
    states = params * (20 if accumulate > 1 else 16)
    per_use = (layers * 2 if remat == "none" else 2 + 4) * layer_params(cfg)
    one_layer = activation_gib(cfg, micro_batch) / layers * 2**30
    if remat == "none":
        activations = layers * one_layer
    else:
        activations = layers * 2 * SEQ * micro_batch * h + one_layer
    logits = micro_batch * MASKED * cfg["vocab_size"] * 4 * 2  # MLM logits and gradient
    return (states + per_use + activations + logits) / 2**30


DEVICES = (("8 x 16 GB", 8, 16), ("8 x 80 GB", 8, 80))
USABLE = 0.8  # of a device's memory: workspace, fragmentation, the framework's own


def fitting_settings(cfg, replicas, device_gb):
    """For remat "none" and "block": the largest power-of-two micro-batch per replica
    that fits USABLE of the device, and the accumulation steps that make up the recipe's
    batch: (remat, micro_batch, accumulate, GiB) or (remat, None, None, GiB of batch 1)."""
    per_replica = BATCH // replicas
    budget = USABLE * device_gb * 1e9 / 2**30
    rows = []
    for remat in ("none", "block"):
        best = None
        micro = 1
        while micro <= per_replica:
            accumulate = per_replica // micro
            gib = device_gib(cfg, micro, remat, accumulate)
            if gib <= budget:
                best = (remat, micro, accumulate, gib)
            micro *= 2
        rows.append(best or (remat, None, None, device_gib(cfg, 1, remat, per_replica)))
    return rows


def print_recipe_on_few_devices():
    print(f"\nThe recipe's batch ({BATCH} x {SEQ}) on 8 devices: {BATCH // 8} sequences per "
          f"replica per update; micro-batch x accumulation steps, mixed bf16, LAMB, "
          f"{USABLE:.0%} of each device usable")
    print("| model | devices | remat | micro-batch per replica | gradient_accumulation_steps "
          "| GiB per replica (states + per-use gradients + activations) |")
    print("|---|---|---|---:|---:|---:|")
    for name, cfg in MODELS.items():
        for label, replicas, gb in DEVICES:
            for remat, micro, accumulate, gib in fitting_settings(cfg, replicas, gb):
                if micro is None:
                    print(f"| {name} | {label} | {remat} | does not fit | - | "
                          f"{gib:.1f} at micro-batch 1 |")
                else:
                    print(f"| {name} | {label} | {remat} | {micro} | {accumulate} | {gib:.1f} |")


def main():
    for name, cfg in MODELS.items():
        step = 3 * forward_flops(cfg, BATCH, SEQ, MASKED, heads=True)
        total = step * STEPS
        params = unique_params(cfg)
        print(f"\n{name}: {params / 1e6:.1f}M unique parameters; training step "
              f"{step / 1e15:.2f} PFLOP; whole recipe {total:.2e} FLOP; assumed MFU {MFU[name]:.0%}")
        for setup, chips, tflops in SETUPS:
            seconds = total / (chips * tflops * 1e12 * MFU[name])
            step_s = seconds / STEPS
            per_replica = BATCH // chips
            ring_bytes = 2 * (chips - 1) / chips * params * 4  # fp32 gradients, ring all-reduce
            print(f"  {setup:30s} {seconds / 3600:8.1f} h  ({step_s:.2f} s/step, "
                  f"{per_replica} seq/replica, activations {activation_gib(cfg, per_replica):.0f} GiB "
                  f"without remat, all-reduce {ring_bytes / 2**20:.0f} MiB sent per replica per step "
                  f"= {ring_bytes / step_s / 2**30:.2f} GiB/s)")
    print_recipe_on_few_devices()


if __name__ == "__main__":
    main()
