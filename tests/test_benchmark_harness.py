"""The arithmetic behind BENCHMARKS.md's ratios and FLOP rates, against hand counts."""

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
