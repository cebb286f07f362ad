"""Input pipeline throughput: sequences per second with dynamic masking.

    python benchmarks/pipeline_throughput.py [--batch_size 256] [--seconds 10]

Writes synthetic records (random ids, ~1.3 pieces per word, 90% full sequences) in the
reference layout to a temporary folder, then times pretraining_dataset(training=True)
at seq 128 (max_predictions 20) and seq 512 (max_predictions 76) on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from albert_keras.data import pretraining_dataset  # noqa: E402
from albert_keras.data.records import serialize_instance  # noqa: E402


def write_records(directory, seq_length, max_predictions, count, num_files=8, seed=0):
    rng = np.random.default_rng(seed)
    writers = [tf.io.TFRecordWriter(os.path.join(directory, f"part-{k}.tfrecord"))
               for k in range(num_files)]
    zeros = np.zeros(max_predictions, np.int64)
    for i in range(count):
        n = seq_length if rng.random() < 0.9 else int(rng.integers(8, seq_length))
        ids = np.zeros(seq_length, np.int64)
        ids[:n] = rng.integers(5, 30000, size=n)
        sep = int(rng.integers(2, n - 1))
        ids[[0, sep, n - 1]] = [2, 3, 3]
        boundary = np.zeros(seq_length, np.int64)
        boundary[:n] = rng.random(n) < 1 / 1.3
        boundary[[0, sep, n - 1]] = 1
        segments = np.zeros(seq_length, np.int64)
        segments[sep + 1:n] = 1
        writers[i % num_files].write(serialize_instance(
            ids, (np.arange(seq_length) < n).astype(np.int64), segments, boundary,
            int(rng.integers(0, 2)), zeros, zeros, zeros.astype(np.float32)))
    for writer in writers:
        writer.close()


def measure(pattern, batch_size, seq_length, max_predictions, seconds):
    dataset = pretraining_dataset(pattern, batch_size, seq_length, max_predictions, seed=0)
    iterator = iter(dataset)
    for _ in range(3):  # warm up: tracing, autotune, buffers
        next(iterator)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    return batches * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--records", type=int, default=4096)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, batch {args.batch_size}, TF {tf.__version__}")
    print("| seq_length | max_predictions | sequences/s |")
    print("|-----------:|----------------:|------------:|")
    for seq_length, max_predictions in ((128, 20), (512, 76)):
        with tempfile.TemporaryDirectory() as directory:
            write_records(directory, seq_length, max_predictions, args.records)
            rate = measure(os.path.join(directory, "*.tfrecord"), args.batch_size,
                           seq_length, max_predictions, args.seconds)
        print(f"| {seq_length} | {max_predictions} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
