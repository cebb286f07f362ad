"""The arithmetic behind BENCHMARKS.md's ratios and FLOP rates, against hand counts; the
machine line of a report; a worker process under another interpreter."""

import os
import sys

import pytest

from benchmarks import harness
from benchmarks.train_step import BASE  # ALBERT-base, the benchmarks' model


def test_paired_ratio_pairs_each_round_with_itself():
    # The fast contender is 2x faster in every round, but load drifts over the run:
    # the per-round ratio sees 2x throughout; the medians are taken over the drift.
    slow, fast = [2.0, 4.0, 8.0, 16.0, 32.0], [1.0, 2.0, 4.0, 8.0, 16.0]
    assert harness.paired_ratio(slow, fast) == (2.0, 2.0)
    ratio_of_medians, per_round = harness.paired_ratio([3.0, 3.0, 9.0], [1.0, 3.0, 3.0])
    assert ratio_of_medians == pytest.approx(1.0)  # medians 3 and 3
    assert per_round == pytest.approx(3.0)  # ratios 3, 1, 3


def test_forward_flops_match_a_count_by_matmul():
    batch, seq, hidden, inner = 8, 128, 768, 3072
    tokens = batch * seq
    per_layer = (4 * 2 * tokens * hidden * hidden  # q, k, v, output projections
                 + 2 * 2 * tokens * hidden * inner  # the FFN's two matmuls
                 + 2 * 2 * batch * seq * seq * hidden)  # scores and context, all heads
    body = 12 * per_layer + 2 * tokens * 128 * hidden + 2 * batch * hidden * hidden
    assert harness.forward_flops(BASE, batch, seq) == body
    assert body == pytest.approx(179e9, rel=0.005)  # issue 6's "about 179 GFLOP"
    masked = 20
    head = 2 * batch * masked * (hidden * 128 + 128 * 30000) + 2 * batch * hidden * 2
    assert harness.forward_flops(BASE, batch, seq, masked, heads=True) == body + head


EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""
SAPPHIRE_RAPIDS = ("model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx avx2 fma "
                   "avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile "
                   "amx_int8\n")
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve sve2 i8mm bf16 svebf16\n"


def test_cpu_description_names_the_vector_features_it_finds():
    assert harness.cpu_description(EPYC, 2) == "AMD EPYC 7B13, 2 cores (AVX2, FMA)"
    assert harness.cpu_description(SAPPHIRE_RAPIDS, 8) == (
        "Intel(R) Xeon(R) Platinum 8480+, 8 cores (AVX2, FMA, AVX512F, AVX512_BF16, "
        "AVX512_FP16, AMX_TILE, AMX_BF16, AMX_INT8)")
    assert harness.cpu_description(GRAVITON3, 4) == (
        "unknown CPU, 4 cores (ASIMD, SVE, SVE2, BF16, I8MM)")
    old = harness.cpu_description("model name\t: Old\nflags\t\t: fpu sse2 avx\n", 1)
    assert old.startswith("Old, 1 cores (none of AVX2, FMA, AVX512F,")
    assert harness.cpu_description("", 2) == "unknown CPU, 2 cores (CPU features unknown)"


@pytest.mark.parametrize("other", [False, True])
def test_worker_runs_the_interpreter_it_is_given(tmp_path, monkeypatch, other):
    """Another environment's python runs without this one's PYTHONPATH."""
    monkeypatch.setenv("BENCH_LOG_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    python = os.path.realpath(sys.executable) if other else sys.executable
    if other and python == sys.executable:
        pytest.skip("sys.executable is not a link: no other path to an interpreter")
    script = ("import os, sys; from benchmarks import harness; harness.reply(dict("
              "executable=sys.executable, pythonpath=os.environ.get('PYTHONPATH'))); "
              "harness.serve({})")
    worker = harness.Worker("harness-test", ["-c", script], python=python)
    found = worker.answer()
    assert "peak_rss_mib" in worker.close()
    assert found["pythonpath"] == (None if other else str(tmp_path))
    assert found["executable"] == (python if other else sys.executable)
