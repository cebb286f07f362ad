"""The kernel choices inside our encoder block, each against the alternative it replaced.

    python benchmarks/kernel_choices.py [--rounds 5] [--calls 10]

ALBERT-base shapes under mixed_bfloat16: training at batch 8 x 128 (1,024 tokens),
inference at batch 32 x 128 (4,096 tokens). Each pair runs in this one process,
interleaved over rounds; the table gives the median ms per call and the ratio. Forward
+ backward where the choice is a training one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from albert_keras.layers import fused_ops  # noqa: E402
from albert_keras.layers.shared_gradients import cast_once_for_uses  # noqa: E402
from albert_keras.layers.fused_ops import sparse_softmax_cross_entropy  # noqa: E402

BF16 = tf.bfloat16


def random(*shape, dtype=BF16):
    return tf.cast(tf.random.normal(shape), dtype)


def with_gradient(fn, inputs):
    """A tf.function running fn forward and backward (upstream gradient of ones)."""
    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = fn(*inputs)
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        return tape.gradient(loss, inputs)
    return run


def gelu_pair():
    h, bias = random(1024, 3072), random(3072, dtype=tf.float32)
    def gelu(fusion):
        return lambda a, b: fused_ops.bias_activation(a, b, "gelu_tanh", fusion)
    return ("bias + GELU, [1024, 3072], fwd+bwd",
            with_gradient(gelu("plain"), [h, bias]),
            with_gradient(gelu("xla_cpu"), [h, bias]))


def layer_norm_pair():
    x, y = random(1024, 768), random(1024, 768)
    params = [random(768, dtype=tf.float32) for _ in range(3)]
    def norm(fusion):
        return lambda *a: fused_ops.residual_layer_norm(*a, 1e-12, fusion)
    return ("residual + LayerNorm, [1024, 768], fwd+bwd",
            with_gradient(norm("plain"), [x, y] + params),
            with_gradient(norm("xla_cpu"), [x, y] + params))


def row_statistics_pair():
    x, y = random(1024, 768), random(1024, 768)
    params = [random(768, dtype=tf.float32) for _ in range(3)]
    kernel = fused_ops._residual_layer_norm_kernel
    return ("LayerNorm kernel's row sums: XLA reduction vs product with a ones vector, fwd+bwd",
            with_gradient(kernel(1e-12, by_matvec=False), [x, y] + params),
            with_gradient(kernel(1e-12, by_matvec=True), [x, y] + params))


def softmax_pair():
    scores = random(8, 12, 128, 128)
    mask_bias = tf.zeros((8, 1, 1, 128))
    return ("float32 masked softmax, [8, 12, 128, 128], fwd+bwd",
            with_gradient(lambda s: fused_ops.masked_softmax(s, mask_bias, "plain"), [scores]),
            with_gradient(lambda s: fused_ops.masked_softmax(s, mask_bias, "xla_cpu"), [scores]))


def attention_pair():
    q, k, v = (random(8, 128, 12, 64) for _ in range(3))

    def einsum(q, k, v):
        probs = tf.nn.softmax(tf.einsum("bqhd,bkhd->bhqk", q, k))
        return tf.einsum("bhqk,bkhd->bqhd", probs, v)

    def batched(q, k, v):
        q, k, v = (tf.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))
        probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True))
        return tf.transpose(tf.matmul(probs, v), (0, 2, 1, 3))

    return ("attention products: einsum vs batched matmul, fwd+bwd",
            with_gradient(einsum, [q, k, v]), with_gradient(batched, [q, k, v]))


def shared_cast_pair():
    kernel = tf.Variable(tf.random.normal((768, 3072)))
    rows = random(12, 8, 768)  # different inputs per use, as in the 12 layers

    def per_use():  # what Keras autocast does: read and cast at every layer
        return tf.add_n([tf.reduce_sum(tf.cast(tf.matmul(rows[use], tf.cast(kernel, BF16)),
                                               tf.float32)) for use in range(12)])

    def once():
        copies = cast_once_for_uses(kernel.read_value(), BF16, 12, "xla_cpu")
        return tf.add_n([tf.reduce_sum(tf.cast(tf.matmul(rows[use], copy), tf.float32))
                         for use, copy in enumerate(copies)])

    def step(loss):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                value = loss()
            return tape.gradient(value, kernel)
        return run

    return ("a [768, 3072] kernel used by 12 layers: cast per use vs once, fwd+bwd",
            step(per_use), step(once))


def bias_placement_pair():
    x, kernel, bias = random(4096, 768), random(768, 768), random(768)
    return ("inference q projection [4096, 768] x [768, 768]: BiasAdd (grappler fuses "
            "it into the MatMul) vs bias after a reshape",
            tf.function(lambda: tf.nn.bias_add(tf.matmul(x, kernel), bias)),
            tf.function(lambda: tf.reshape(tf.matmul(x, kernel), (32, 128, 12, 64))
                        + tf.reshape(bias, (12, 64))))


def cross_entropy_pair():
    logits = random(160, 30000, dtype=tf.float32)  # 8 x 20 masked positions, V = 30k
    labels = tf.random.uniform((160,), 0, 30000, tf.int32)
    def loss(fusion):
        return lambda lg: sparse_softmax_cross_entropy(labels, lg, fusion)
    return ("MLM cross entropy, [160, 30000] float32 logits, fwd+bwd",
            with_gradient(loss("plain"), [logits]),
            with_gradient(loss("xla_cpu"), [logits]))


def gemm_rates(rounds, calls):
    """bf16 GFLOP/s of one oneDNN matmul at the shapes of a batch-8 x 128 training step."""
    rates = {}
    for m, k, n in ((1024, 768, 768), (1024, 768, 3072), (1024, 3072, 768)):
        a, b = random(m, k), random(k, n)
        matmul = tf.function(lambda a=a, b=b: tf.matmul(a, b))
        matmul()
        seconds = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                matmul()
            seconds.append((time.perf_counter() - start) / calls)
        rates[(m, k, n)] = 2 * m * k * n / statistics.median(seconds) / 1e9
    return rates


PAIRS = (gelu_pair, layer_norm_pair, row_statistics_pair, softmax_pair, attention_pair,
         shared_cast_pair, bias_placement_pair, cross_entropy_pair)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    pairs = [make() for make in PAIRS]
    times = {index: ([], []) for index in range(len(pairs))}
    for _, before, after in pairs:
        before(), after()  # trace and compile
    for _ in range(args.rounds):
        for index, (_, before, after) in enumerate(pairs):
            for slot, fn in enumerate((before, after)):
                start = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                times[index][slot].append((time.perf_counter() - start) / args.calls * 1e3)
    print(f"python benchmarks/kernel_choices.py --rounds {args.rounds} --calls {args.calls}")
    print("| choice | before ms | after ms | speed-up |\n|---|---:|---:|---:|")
    for index, (title, _, _) in enumerate(pairs):
        before, after = (statistics.median(t) for t in times[index])
        print(f"| {title} | {before:.2f} | {after:.2f} | {before / after:.2f}x |")
    rates = gemm_rates(args.rounds, args.calls)
    print("\nbf16 matmul alone (median GFLOP/s): " + ", ".join(
        f"[{m}, {k}] x [{k}, {n}] {rate:.0f}" for (m, k, n), rate in rates.items()))


if __name__ == "__main__":
    main()
