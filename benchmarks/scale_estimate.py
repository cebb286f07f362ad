"""On paper: time to train the reference recipe (batch 4096, seq 512, 125k steps,
20 masked positions) for ALBERT base and xxlarge, from FLOP counts.

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


if __name__ == "__main__":
    main()
