"""Store-backed pool operations equal their in-memory counterparts."""

from __future__ import annotations

import pytest
import torch

from grait_engine.features_store import FeatureStore
from grait_engine.selection.pool import MatrixPool, StorePool, group_sums
from tests.engine.selection.synthetic import features, write_store


def test_store_pool_matches_matrix_pool(tmp_path):
    ans, idk = features(150, 8, 0), features(150, 8, 1, "unnormalised")
    write_store(tmp_path, ans, idk, shard_rows=32)
    store = FeatureStore.open(tmp_path)
    rows = torch.tensor([r for r in range(150) if r % 7 != 3 and r not in range(40, 90)])
    pool = StorePool(store, "idk", rows, block_rows=16)
    reference = MatrixPool(idk[rows])
    vectors = torch.randn(8, 5, dtype=torch.float64)
    torch.testing.assert_close(
        pool.project(vectors), reference.project(vectors), rtol=0, atol=1e-12
    )
    positions = torch.tensor([5, 0, 77, 5])
    assert torch.equal(pool.fetch(positions), reference.fetch(positions))
    assert pool.passes == 1


def test_group_sums_and_norm_deviation(tmp_path):
    ans, idk = features(100, 6, 2), features(100, 6, 3)
    idk[17] *= 1.5
    write_store(tmp_path, ans, idk, shard_rows=30)
    store = FeatureStore.open(tmp_path)
    groups = [
        torch.tensor([99, 3, 50, 4]),
        torch.arange(10, 40),
        torch.tensor([], dtype=torch.int64),
    ]
    sums, deviation = group_sums(store, "idk", groups, block_rows=8)
    for k, rows in enumerate(groups):
        torch.testing.assert_close(sums[k], idk[rows].double().sum(0), rtol=0, atol=1e-12)
    assert deviation == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="overlap"):
        group_sums(store, "idk", [torch.tensor([1, 2]), torch.tensor([2])])
