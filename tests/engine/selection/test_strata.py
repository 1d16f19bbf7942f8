"""The ``stratified`` variant: k-means strata, the budget split, and the greedy within strata."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from grait_engine.features_store import FeatureStore
from grait_engine.selection.pool import MatrixPool, StorePool
from grait_engine.selection.reference import reference_greedy, similarity_matrices
from grait_engine.selection.strata import spherical_kmeans, split_budget, strata_count
from grait_engine.selection.variants import pick_idk
from tests.engine.selection.synthetic import features, unit, write_store


def clustered(sizes: list[int], d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, d) unit rows in len(sizes) tight groups of the given sizes, and their labels.
    Group 0 lies closest to the direction ``e_0`` the tests use as the answer sum."""
    generator = torch.Generator().manual_seed(seed)
    centers = unit(torch.randn(len(sizes), d, generator=generator))
    centers[0] = unit(torch.eye(d)[:1] + 0.1 * centers[0:1])[0]
    labels = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)])
    rows = unit(4.0 * centers[labels] + torch.randn(len(labels), d, generator=generator) / d**0.5)
    return rows.float(), labels


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labelings group the rows identically (up to renaming the groups)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_split_budget_is_proportional_capped_and_exact():
    assert split_budget([50, 30, 20], 10) == [5, 3, 2]
    assert split_budget([1, 1, 1], 2) == [1, 1, 0]  # remainders tie: lower strata first
    assert split_budget([2, 100], 50) == [1, 49]
    assert split_budget([3, 0, 4], 100) == [3, 0, 4]  # more budget than pool: everything
    assert split_budget([5, 5], 0) == [0, 0]
    for sizes, n in (([7, 1, 13, 2], 9), ([1] * 10, 7), ([40, 3, 3], 30)):
        shares = split_budget(sizes, n)
        assert sum(shares) == n and all(s <= size for s, size in zip(shares, sizes, strict=True))


def test_strata_count_grows_with_the_budget_and_never_exceeds_the_pool():
    assert strata_count(1, 100) == 1
    assert strata_count(150, 2000) == 12
    assert strata_count(1000, 5000) == 32
    assert strata_count(10**6, 10**7) == 64
    assert strata_count(150, 5) == 5


def test_kmeans_recovers_well_separated_groups_and_is_seeded():
    rows, truth = clustered([60, 40, 30, 20])
    found = spherical_kmeans(MatrixPool(rows), 4, seed=3)
    assert same_partition(found, truth)
    assert torch.equal(found, spherical_kmeans(MatrixPool(rows), 4, seed=3))


def test_greedy_collapses_onto_one_group_where_stratified_covers_them_all():
    rows, truth = clustered([60, 40, 30, 20])
    kwargs = {
        "answer_sum": torch.eye(16, dtype=torch.float64)[0] * 5,
        "idk_mean": rows.double().mean(0),
        "seed": 1,
    }
    greedy = pick_idk("greedy", 20, MatrixPool(rows), **kwargs)
    assert set(truth[greedy.order].tolist()) == {0}
    picks = pick_idk("stratified", 16, MatrixPool(rows), **kwargs)
    assert picks.stats["strata"] == 4
    assert Counter(truth[picks.order].tolist()) == {
        0: 7,
        1: 4,
        2: 3,
        3: 2,
    }  # 16 x sizes / 150, largest remainder
    assert len(set(picks.order.tolist())) == 16


def test_within_a_stratum_the_picks_are_the_greedys():
    rows, truth = clustered([60, 40, 30, 20])
    answer_sum = features(5, 16, 9).double().sum(0)
    picks = pick_idk(
        "stratified",
        16,
        MatrixPool(rows),
        answer_sum=answer_sum,
        idk_mean=rows.double().mean(0),
        seed=1,
    )
    labels = spherical_kmeans(MatrixPool(rows), strata_count(16, len(rows)), seed=1)
    for group in labels.unique().tolist():
        members = torch.nonzero(labels == group).flatten()
        mine = [p for p in picks.order.tolist() if labels[p] == group]
        s_ii, _ = similarity_matrices(rows[members], rows[:1])
        s_ia = (rows[members].double() @ answer_sum)[:, None]
        expected = reference_greedy(s_ia, s_ii, len(mine)).order
        assert mine == members[expected].tolist()


def test_a_budget_of_one_is_the_greedys_first_pick():
    rows = features(80, 10, 4)
    kwargs = {
        "answer_sum": features(3, 10, 5).double().sum(0),
        "idk_mean": rows.double().mean(0),
        "seed": 0,
    }
    assert (
        pick_idk("stratified", 1, MatrixPool(rows), **kwargs).order.tolist()
        == pick_idk("greedy", 1, MatrixPool(rows), **kwargs).order.tolist()
    )


@pytest.mark.parametrize("n_pick", [10, 200])
def test_store_and_matrix_pools_pick_the_same(tmp_path, n_pick):
    idk = features(150, 8, 1, "clustered")
    write_store(tmp_path, features(150, 8, 0), idk, shard_rows=32)
    store = FeatureStore.open(tmp_path)
    rows = torch.tensor([r for r in range(150) if r % 5 != 2])
    kwargs = {
        "answer_sum": features(4, 8, 2).double().sum(0),
        "idk_mean": idk.double().mean(0),
        "seed": 7,
    }
    from_store = pick_idk(
        "stratified", n_pick, StorePool(store, "idk", rows, block_rows=16), **kwargs
    )
    in_memory = pick_idk("stratified", n_pick, MatrixPool(idk[rows]), **kwargs)
    assert from_store.order.tolist() == in_memory.order.tolist()
    assert len(from_store.order) == min(n_pick, len(rows))
