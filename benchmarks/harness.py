"""Interleaved side-by-side timing on a shared machine.

Each contender runs in its own worker process (dtype policies and thread pools are
process-global), loads once, warms up, then answers "run" requests from the driver.
The driver sends one short run to every contender per round, round after round, so
that load from other jobs on the machine falls on all contenders alike; reports take
medians over rounds and ratios between contenders of the same run.

Protocol: the driver writes one JSON object per line to the worker's stdin; the worker
answers with one line "@@" + JSON on stdout (anything else on stdout is library noise).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ worker side
def peak_rss_mib() -> float:
    """VmHWM: the process's peak resident set, imports included."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reply(obj):
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(handlers: dict):
    """Worker main loop: {"op": name, ...} -> handlers[name](**rest) -> reply."""
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            reply({"peak_rss_mib": peak_rss_mib()})
            return
        reply(handlers[op](**request))


def time_calls(fn, n: int) -> list:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# ------------------------------------------------------------------ driver side
class Worker:
    def __init__(self, name: str, argv: list, env: dict | None = None,
                 python: str = sys.executable):
        """A worker process: `python argv` in the repository root, stderr to
        $BENCH_LOG_DIR/bench-<name>.log. python: another environment's interpreter runs
        without this one's PYTHONPATH, VIRTUAL_ENV and PYTHONHOME."""
        self.name = name
        self.log = open(os.path.join(os.environ.get("BENCH_LOG_DIR", "/tmp"),
                                     f"bench-{name}.log"), "w")
        environment = dict(os.environ)
        if python != sys.executable:
            for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
                environment.pop(key, None)
        self.proc = subprocess.Popen(
            [python] + argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, env=dict(environment, **(env or {})))

    def request(self, op: str, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps(dict(op=op, **kwargs)) + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def answer(self) -> dict:
        """The worker's next reply (the first one says it is built and warmed up)."""
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"worker {self.name} exited (rc {self.proc.wait()}); "
                           f"see {self.log.name}")

    def close(self) -> dict:
        try:
            result = self.request("quit")
        finally:
            self.proc.wait()
            self.log.close()
        return result


# The CPU features that decide matmul speed, as /proc/cpuinfo names them: x86's
# "flags" (AVX2 and FMA; AVX-512 and its bf16 and fp16 instructions; AMX tiles) and
# Arm's "Features" (NEON is asimd; SVE; the bf16 and int8 matrix instructions).
VECTOR_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile",
                   "amx_bf16", "amx_int8", "asimd", "sve", "sve2", "bf16", "i8mm")


def cpu_description(cpuinfo: str, cores: int) -> str:
    """"<model>, <cores> cores (<features>)" from the text of /proc/cpuinfo: the
    VECTOR_FEATURES its first flags (or Features) line lists, upper-cased."""
    model = flags = None
    for line in cpuinfo.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and model is None:
            model = value
        elif key in ("flags", "Features") and flags is None:
            flags = value.split()
    if flags is None:
        features = "CPU features unknown"
    else:
        found = [f.upper() for f in VECTOR_FEATURES if f in flags]
        features = ", ".join(found) or "none of " + ", ".join(f.upper() for f in VECTOR_FEATURES)
    return f"{model or 'unknown CPU'}, {cores} cores ({features})"


def machine() -> str:
    import tensorflow as tf  # noqa: imported late: the driver itself stays light
    cpuinfo = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu_description(cpuinfo, os.cpu_count())}, {mem:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, load average at start {os.getloadavg()[0]:.1f}")


def run_header(script: str) -> dict:
    """When, where and how a side-by-side run started: the head of its report.
    script: the driver's path relative to the repository root."""
    import datetime
    return dict(date=datetime.datetime.now().isoformat(timespec="minutes"), machine=machine(),
                command="python " + " ".join([script] + sys.argv[1:]))


def publish(report: dict, print_table, json_path=None):
    """Prints the report's table and writes the report as JSON when asked to."""
    print_table(report)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=1)


def dispatch(args, print_table, worker, drive):
    """A benchmark script's entry: --table prints a saved report, --worker runs a
    worker process, otherwise the driver runs."""
    if args.table:
        print_table(load_report(args.table))
    elif args.worker:
        worker(args)
    else:
        drive(args)


def load_report(json_path):
    """A report written by publish(), for --table."""
    with open(json_path) as f:
        return json.load(f)


def median(values):
    return statistics.median(values)


def paired_ratio(slow_rounds, fast_rounds):
    """How many times faster `fast` is than `slow`, from their per-round times of one run:
    (ratio of the medians, median of the per-round ratios). The second pairs each round
    with itself, so load that drifts over a run cancels out of it."""
    return (median(slow_rounds) / median(fast_rounds),
            median([s / f for s, f in zip(slow_rounds, fast_rounds)]))


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _block_flops(cfg, seq: int, tokens: int) -> float:
    """One encoder block over `tokens` (batch x seq): the q, k, v and output projections,
    the FFN, and the two attention products."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    return 2 * tokens * (4 * h * h + 2 * h * i) + 2 * 2 * tokens * seq * h


# One forward pass of ALBERT at (batch, seq) with the MLM head at P masked positions,
# in multiply-adds x 2. The same nominal count is used for every contender ("model
# FLOPs"): work a contender does beyond it (transformers' MLM head over all positions)
# lowers its achieved rate instead of raising it.
def forward_flops(cfg, batch: int, seq: int, masked: int = 0, heads: bool = False) -> float:
    h, e, v, layers = (cfg["hidden_size"], cfg["embedding_size"], cfg["vocab_size"],
                       cfg["num_hidden_layers"])
    tokens = batch * seq
    flops = layers * _block_flops(cfg, seq, tokens)
    flops += 2 * tokens * e * h + 2 * batch * h * h  # + projection, pooler
    if heads:
        flops += 2 * batch * masked * (h * e + e * v) + 2 * batch * h * 2
    return float(flops)


def matmul_ceiling_runner():
    """run(n_steps) -> {"times": {dtype: seconds per call}} of tf.matmul 4096 x 4096 in
    float32 and bfloat16, warmed up: the machine's same-run matmul ceiling."""
    import tensorflow as tf

    n = 4096
    a32 = tf.random.normal((n, n))
    b32 = tf.random.normal((n, n))
    operands = {"float32": (a32, b32),
                "bfloat16": (tf.cast(a32, tf.bfloat16), tf.cast(b32, tf.bfloat16))}

    @tf.function
    def matmul(a, b):
        return tf.matmul(a, b)

    for a, b in operands.values():
        matmul(a, b).numpy()

    def run(n_steps):
        out = {}
        for dtype, (a, b) in operands.items():
            times = time_calls(lambda: matmul(a, b).numpy(), n_steps)
            out[dtype] = times
        return {"times": out}

    return run


def matmul_ceiling_worker():
    """Worker: GFLOP/s of tf.matmul 4096 x 4096 in float32 and bfloat16."""
    run = matmul_ceiling_runner()
    reply({"ready": True})
    serve({"run": run})
