"""idk variants (o1_top, random, code_literal) and the ik selection against their references."""

from __future__ import annotations

import torch

from grait_engine.selection.ik import select_ik
from grait_engine.selection.pool import MatrixPool
from grait_engine.selection.reference import (
    reference_code_literal,
    reference_greedy,
    reference_o1_top,
    similarity_matrices,
)
from grait_engine.selection.variants import pick_idk
from tests.engine.selection.synthetic import features


def setup(n=180, d=12, m=9, seed=0, kind="random"):
    pool_rows = features(n, d, seed, kind)
    ik_rows = features(m, d, seed + 1, "random")
    s_ii, s_ia = similarity_matrices(pool_rows, ik_rows)
    kwargs = {
        "answer_sum": ik_rows.double().sum(0),
        "idk_mean": pool_rows.double().mean(0),
        "seed": 0,
    }
    return MatrixPool(pool_rows), s_ii, s_ia, kwargs


def test_greedy_variant_matches_reference():
    pool, s_ii, s_ia, kwargs = setup()
    got = pick_idk("greedy", 50, pool, **kwargs)
    expected = reference_greedy(s_ia, s_ii, 50)
    assert got.order.tolist() == expected.order.tolist()
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-9)
    assert got.stats["passes"] == pool.passes


def test_o1_top_matches_reference():
    for seed in range(3):
        pool, s_ii, _, kwargs = setup(seed=seed)
        got = pick_idk("o1_top", 40, pool, **kwargs)
        assert got.order.tolist() == reference_o1_top(s_ii, 40).tolist()
        torch.testing.assert_close(got.scores, s_ii.mean(1)[got.order], rtol=0, atol=1e-12)


def test_code_literal_matches_reference_and_notes_shortfall():
    for seed, n_pick in [(0, 40), (1, 60), (2, 120)]:
        pool, s_ii, s_ia, kwargs = setup(seed=seed)
        got = pick_idk("code_literal", n_pick, pool, **kwargs)
        expected = reference_code_literal(s_ia, s_ii, n_pick)
        assert got.order.tolist() == expected.tolist()
        assert set(got.order.tolist()).isdisjoint(
            reference_greedy(s_ia, s_ii, n_pick).order.tolist()
        )
        # 180 items: 120 greedy steps leave 60 < 120
        assert bool(got.notes) == (n_pick == 120)
    assert "only 60 items left" in got.notes[0]
    everything = pick_idk("code_literal", 500, pool, **kwargs)
    assert sorted(everything.order.tolist()) == list(range(180))
    assert "took all" in everything.notes[0]


def test_random_is_seeded():
    pool, _, _, kwargs = setup()
    first = pick_idk("random", 30, pool, **kwargs)
    again = pick_idk("random", 30, pool, **kwargs)
    other = pick_idk("random", 30, pool, **{**kwargs, "seed": 1})
    assert first.order.tolist() == again.order.tolist()
    assert first.order.tolist() != other.order.tolist()
    assert first.scores is None and len(set(first.order.tolist())) == 30
    assert len(pick_idk("random", 500, pool, **kwargs).order) == 180


def test_ik_top_by_correctness_with_stable_ties():
    c = torch.tensor([0.6, 1.0, 0.8, 1.0, 0.6, 0.9])
    assert select_ik(c, 4).tolist() == [1, 3, 5, 2]
    assert select_ik(c, 6).tolist() == [1, 3, 5, 2, 0, 4]
    assert select_ik(c, 10).tolist() == [1, 3, 5, 2, 0, 4]
    assert select_ik(c, 0).tolist() == []
