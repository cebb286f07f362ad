"""Batch-1 latency A/B: what our float32 attention softmax costs under mixed_bfloat16.

    python benchmarks/softmax_precision_ab.py [--rounds 6] [--calls 5]

One process, ALBERT-base, batch 1 x seq 128, tf.function forward, contenders interleaved
in rounds: our AlbertBackbone as shipped (softmax in float32), the same model with the
softmax in bfloat16 (a patched SelfAttention.call, for measurement only), and keras-hub's
AlbertBackbone (softmax in the compute dtype). Prints median milliseconds per call.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402


def bfloat16_softmax_call(self, x, input_mask, training=None):
    """SelfAttention.call with the softmax left in the compute dtype."""
    from albert_keras.layers.encoder import attention_bias
    q, k, v = (self._split_heads(d(x)) for d in (self.query, self.key, self.value))
    scores = ops.einsum("bqhd,bkhd->bhqk", q * ops.cast(self.head_size ** -0.5, q.dtype), k)
    probs = ops.softmax(scores + ops.cast(attention_bias(input_mask), scores.dtype), axis=-1)
    context = ops.einsum("bhqk,bkhd->bqhd", probs, v)
    context = ops.reshape(context, (ops.shape(x)[0], ops.shape(x)[1], self.hidden_size))
    return self.layer_norm(x + self.output_dense(context))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    keras.config.set_dtype_policy("mixed_bfloat16")
    import keras_hub

    import albert_keras
    from albert_keras.layers.encoder import SelfAttention

    config = albert_keras.AlbertConfig.from_preset("base")
    ours = albert_keras.AlbertBackbone(config)
    hub = keras_hub.models.AlbertBackbone(
        vocabulary_size=30000, num_layers=12, num_heads=12, num_groups=1,
        num_inner_repetitions=1, embedding_dim=128, hidden_dim=768, intermediate_dim=3072,
        dropout=0.0, max_sequence_length=512)
    ids = np.random.default_rng(0).integers(5, 30000, (1, 128)).astype("int32")
    ours_inputs = {"input_ids": ids, "segment_ids": np.zeros_like(ids),
                   "input_mask": np.ones_like(ids)}
    hub_inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
                  "padding_mask": np.ones_like(ids)}
    shipped_call = SelfAttention.call

    def traced(model, patched):
        def forward(inputs):
            SelfAttention.call = bfloat16_softmax_call if patched else shipped_call
            try:
                return model(inputs, training=False)["sequence_output"]
            finally:
                SelfAttention.call = shipped_call
        return tf.function(forward)

    contenders = {"ours (float32 softmax)": (traced(ours, False), ours_inputs),
                  "ours (bfloat16 softmax)": (traced(ours, True), ours_inputs),
                  "keras-hub": (tf.function(lambda a: hub(a, training=False)["sequence_output"]),
                                hub_inputs)}
    for function, inputs in contenders.values():
        for _ in range(3):
            function(inputs).numpy()
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (function, inputs) in contenders.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                function(inputs).numpy()
            times[name].append((time.perf_counter() - start) / args.calls * 1000)
    print("| contender | batch 1 median ms | min-max |\n|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {np.median(values):.1f} | {min(values):.1f}-{max(values):.1f} |")


if __name__ == "__main__":
    main()
