"""Profiles our training step with TensorFlow's profiler and lists where the time goes.

    python benchmarks/profile_step.py [--precision float32] [--jit 0] [--steps 3]
        [--logdir runs/profile]

Writes a TensorBoard profiler trace (open it with TensorBoard's profile plugin) of
--steps training steps of AlbertPretrainer(base), batch 8 x 128, and prints the ops
that took most of the host's thread time, summed over those steps, read from the
trace's xplane.pb.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.train_step import make_batch, ours_step  # noqa: E402


def op_totals(xplane_path):
    """({op type: µs}, {op name without layer indices: µs}) summed over the TF op
    events of the host plane's compute threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_name = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if ":" not in name or name.startswith("ExecutorState"):  # bookkeeping
                    continue
                op_name, op_type = name.rsplit(":", 1)
                micros = event.duration_ps / 1e6
                by_type[op_type] += micros
                by_name[re.sub(r"_\d+", "", op_name)] += micros
    return by_type, by_name


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--logdir", default="runs/profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    import tensorflow as tf

    step = ours_step(make_batch(8, 128), args.precision, bool(args.jit))
    for _ in range(3):
        step()
    logdir = os.path.join(args.logdir, f"{args.precision}-{'xla' if args.jit else 'nojit'}")
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        step()
    tf.profiler.experimental.stop()
    path = sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")))[-1]
    by_type, by_name = op_totals(path)
    everything = sum(by_type.values())
    print(f"trace: {path}\nop time on the compute threads {everything / 1e6 / args.steps:.2f} s "
          f"per step (wall time per step is less: ops overlap on the cores)")
    for title, totals in (("by op type", by_type), ("by op", by_name)):
        print(f"\n{title}:")
        for name, micros in totals.most_common(args.top):
            print(f"{micros / 1e3 / args.steps:9.1f} ms/step {100 * micros / everything:5.1f}%  "
                  f"{name}")

if __name__ == "__main__":
    main()
