"""Strategies: MirroredStrategy over 2 logical CPUs equals one device; two
MultiWorkerMirroredStrategy workers on localhost end with identical weights, and
only with training.distributed_fit_fix applied. Each run is its own process:
devices and collectives are fixed when TensorFlow starts."""

import json
import os
import socket
import subprocess
import sys


TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def run_script(script, *args, env=None, timeout=240):
    return subprocess.run([sys.executable, os.path.join(TESTS, script), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def parse(stdout):
    values = {}
    for line in stdout.splitlines():
        key, _, rest = line.partition(" ")
        values[key] = rest
    return values


# MODEL:ACCUMULATE:REMAT (mirrored_parity_script.py), all run in one process.
MIRRORED_CASES = ("pretrainer:1:none", "pretrainer:2:block", "tagger:2:none")


def test_mirrored_two_cpus_equals_default_strategy():
    """pretrainer:2:block: each replica's 4 sequences as 2 micro-batches of 2 through
    recomputed blocks, one update per global batch, against the default strategy's one
    batch of 8 without remat. tagger:2:none: the tagger's loss, whose labeled words fall
    unevenly over the replicas and micro-batches."""
    result = run_script("mirrored_parity_script.py", *MIRRORED_CASES)
    assert result.returncode == 0, result.stderr[-3000:]
    values = parse(result.stdout)
    for case in MIRRORED_CASES:
        assert values[case + ".replicas"] == "2", case
        assert float(values[case + ".weights_moved"]) > 1e-2, case  # training changed them
        assert float(values[case + ".max_loss_diff"]) < 1e-4, case
        assert float(values[case + ".max_weight_diff"]) < 1e-4, case


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(command, extra_env=None, timeout=300):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}),
            TF_CPP_MIN_LOG_LEVEL="2", **(extra_env or {}))
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise
        results.append((process.returncode, out, err))
    return results


def test_multi_worker_fit_trains_identically_with_the_fix():
    results = run_two_workers([sys.executable, os.path.join(TESTS, "multi_worker_worker.py")])
    for code, out, err in results:
        assert code == 0, err[-3000:]
    first, second = (parse(out) for _, out, _ in results)
    assert first["fingerprint"] == second["fingerprint"]
    assert first["losses"] == second["losses"]


def test_multi_worker_fit_fails_without_the_fix():
    """Keras 3.15's own fit under MultiWorkerMirroredStrategy: the upstream bug."""
    results = run_two_workers(
        [sys.executable, os.path.join(TESTS, "multi_worker_worker.py"), "--no-fix"])
    assert all(code != 0 for code, _, _ in results)
    assert any("PerReplica" in err for _, _, err in results)
