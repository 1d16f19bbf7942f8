"""Preconditioning and the seeded block Rademacher projection."""

from __future__ import annotations

import math

import torch

from grait_engine.features import GEN_ROWS, Projector, precondition


def test_precondition_follows_method_md() -> None:
    g, m, v = torch.randn(3, 10), torch.randn(10), torch.rand(10)
    want = (0.9 * m + 0.1 * g) / torch.sqrt(0.999 * v + 0.001 * g**2 + 1e-8)
    torch.testing.assert_close(precondition(g.clone(), m, v, (0.9, 0.999), 1e-8), want)


def test_projection_is_seeded_and_rademacher() -> None:
    n_params = 2 * GEN_ROWS + 37
    a, b = Projector(n_params, 64, seed=3), Projector(n_params, 64, seed=3)
    for k in range(a.n_blocks):
        assert torch.equal(a.block(k), b.block(k))
    assert set(a.block(0).unique().tolist()) == {-1.0, 1.0}
    assert a.block(2).shape == (37, 64)
    assert not torch.equal(a.block(0), Projector(n_params, 64, seed=4).block(0))
    assert not torch.equal(a.block(0), a.block(1))


def test_projection_independent_of_cache_and_grouping() -> None:
    n_params = GEN_ROWS + 100
    rows = torch.randn(10, n_params)
    cached = Projector(n_params, 48, seed=0)
    uncached = Projector(n_params, 48, seed=0, cache_bytes=0)
    assert uncached._cache is None and cached._cache is not None
    whole = cached.project(rows.clone())
    assert torch.equal(whole, uncached.project(rows.clone()))
    parts = torch.cat([cached.project(rows[:3].clone()), cached.project(rows[3:].clone())])
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6)


def test_projection_matches_dense_matrix_and_normalises() -> None:
    n_params = GEN_ROWS + 5
    projector = Projector(n_params, 16, seed=1)
    dense = torch.cat([projector.block(k) for k in range(projector.n_blocks)]) / math.sqrt(16)
    rows = torch.randn(4, n_params)
    want = rows @ dense
    want = want / want.norm(dim=1, keepdim=True)
    torch.testing.assert_close(projector.project(rows), want, rtol=1e-4, atol=1e-5)
    zero = projector.project(torch.zeros(2, n_params))
    assert torch.equal(zero, torch.zeros(2, 16))


def test_dim_is_capped_at_the_parameter_count() -> None:
    assert Projector(100, 8192, seed=0).d == 100
    assert Projector(100, 10, seed=0).d == 10


def test_bfloat16_products_keep_the_cosines() -> None:
    n_params = 2 * GEN_ROWS + 11
    rows = torch.randn(6, n_params)
    exact = Projector(n_params, 256, seed=2).project(rows.clone())
    fast = Projector(n_params, 256, seed=2, dtype="bfloat16")
    assert fast.block(0).dtype == torch.bfloat16
    cosine = (fast.project(rows.clone()) * exact).sum(dim=1)
    assert cosine.min() > 0.9999
