"""The block greedy equals the literal N x N greedy of METHOD.md 4.2, pick for pick."""

from __future__ import annotations

import pytest
import torch

from grait_engine.selection import greedy as greedy_module
from grait_engine.selection.greedy import GreedyTuning, first_near_max, greedy_select
from grait_engine.selection.pool import MatrixPool
from grait_engine.selection.reference import reference_greedy, similarity_matrices
from tests.engine.selection.synthetic import features

TUNINGS = {
    "default": GreedyTuning(),
    "tiny": GreedyTuning(candidates=4, first_block=2, max_block=8, min_block=1),
    "wide": GreedyTuning(candidates=64, first_block=64, max_block=256, min_block=16),
}


def run_both(n, d, m, n_pick, seed, kind, tuning):
    pool_rows = features(n, d, seed, kind)
    ik_rows = features(m, d, seed + 1000, "random")
    s_ii, s_ia = similarity_matrices(pool_rows, ik_rows)
    expected = reference_greedy(s_ia, s_ii, n_pick)
    base = pool_rows.double() @ ik_rows.double().sum(0)
    got = greedy_select(base, n_pick, MatrixPool(pool_rows), tuning)
    return expected, got


CASES = [
    # n, d, m (ik_sel), n_pick, seed, kind
    (200, 16, 10, 40, 0, "random"),
    (500, 32, 50, 120, 1, "random"),
    (333, 64, 0, 100, 2, "random"),  # no ik: every start score is 0, all tied
    (300, 24, 20, 150, 3, "clustered"),
    (240, 16, 15, 90, 4, "duplicates"),
    (120, 8, 5, 60, 5, "identical"),
    (400, 2, 30, 200, 6, "lowdim"),
    (250, 12, 25, 80, 7, "unnormalised"),
    (150, 10, 12, 150, 8, "random"),  # pick the whole pool
]


@pytest.mark.parametrize("tuning", sorted(TUNINGS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[5]}-n{c[0]}-k{c[3]}")
def test_block_greedy_equals_brute_force(case, tuning):
    expected, got = run_both(*case, TUNINGS[tuning])
    assert got.order.tolist() == expected.order.tolist()
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-9)
    left = torch.ones(case[0], dtype=torch.bool)
    left[got.order] = False
    torch.testing.assert_close(got.final[left], expected.final[left], rtol=0, atol=1e-9)
    assert got.fallbacks == 0
    assert got.passes <= case[3]  # never more passes than the literal greedy


def test_mispredictions_are_caught_and_cost_passes_not_correctness():
    # Clustered rows with few candidates: non-candidates overtake inside a block.
    expected, got = run_both(600, 16, 10, 300, 11, "clustered", TUNINGS["tiny"])
    assert got.order.tolist() == expected.order.tolist()
    assert got.cut > 0


def test_fallback_step_when_the_prediction_misses_the_winner(monkeypatch):
    # Force candidate sets that exclude the true winner: every block must fall back.
    real = greedy_module._candidates

    def without_best(masked, k):
        cand = real(masked, k + 1)
        return cand[cand != first_near_max(masked)][:k]

    monkeypatch.setattr(greedy_module, "_candidates", without_best)
    expected, got = run_both(120, 8, 6, 30, 12, "random", TUNINGS["default"])
    assert got.order.tolist() == expected.order.tolist()
    assert got.fallbacks > 0


def test_ties_go_to_the_lowest_position():
    scores = torch.tensor([0.5, 1.0, 1.0 + 1e-12, 1.0 - 1e-3], dtype=torch.float64)
    assert first_near_max(scores) == 1
    assert first_near_max(torch.tensor([float("-inf"), 2.0, 2.0])) == 1
    identical = features(30, 4, 0, "identical")
    got = greedy_select(torch.zeros(30, dtype=torch.float64), 10, MatrixPool(identical))
    assert got.order.tolist() == list(range(10))


def test_empty_and_oversized_budgets():
    rows = features(20, 4, 0)
    base = torch.zeros(20, dtype=torch.float64)
    assert greedy_select(base, 0, MatrixPool(rows)).order.numel() == 0
    assert sorted(greedy_select(base, 50, MatrixPool(rows)).order.tolist()) == list(range(20))
