"""Strata of the idk pool: seeded spherical k-means on F_idk, and a budget split over them.

Why: GRAIT's greedy maximises the refusal features' mutual agreement, and with a small
budget that collapses onto one tight group of the pool (on the medium toy world, one
relation); the tuned model then learns to refuse that group only. The ``stratified``
variant runs the same greedy inside each stratum, with a share of the budget proportional
to the stratum's size, so the picks cover the pool the way a random sample would while
keeping GRAIT's objective within each part.

Cost: one projection pass per k-means++ start (k passes), then at most ``ITERATIONS``
rounds of one projection pass (n x k similarities) plus one pass of per-stratum sums;
memory O(n * k + k * d). Linear in the pool size; never n x n.
"""

from __future__ import annotations

import math

import torch

from grait_engine.selection.pool import PoolOps

F64 = torch.float64
ITERATIONS = 10


def strata_count(n_pick: int, n_pool: int) -> int:
    """How many strata for a budget of ``n_pick`` over ``n_pool`` items: about
    ``sqrt(n_pick)`` (each stratum then gets about as many picks as there are strata), at
    least 1, at most 64 and never more than the pool."""
    return max(1, min(64, n_pool, round(math.sqrt(max(n_pick, 1)))))


def spherical_kmeans(
    pool: PoolOps, k: int, *, seed: int, iterations: int = ITERATIONS
) -> torch.Tensor:
    """(n,) int64 stratum of every pool row, 0..k-1 (a stratum may end up empty).

    Starts from ``k`` rows chosen by k-means++ seeding (``seed``); assigns each row to the
    centroid of highest inner product; a centroid is its members' normalised sum (rows are unit
    vectors, so this is cosine k-means). Stops early when no assignment changes. Ties go
    to the lower stratum (``argmax``), so the result is deterministic for a fixed seed.
    """
    if pool.n == 0:
        return torch.zeros(0, dtype=torch.int64)
    k = max(1, min(k, pool.n))
    centroids = _kmeans_plus_plus(pool, k, seed).T  # (d, k)
    labels = torch.full((pool.n,), -1, dtype=torch.int64)
    for _ in range(iterations):
        new = pool.project(centroids).argmax(1)
        if bool((new == labels).all()):
            break
        labels = new
        sums = pool.group_sums(labels, k)  # (k, d)
        norms = torch.linalg.vector_norm(sums, dim=1, keepdim=True)
        # An emptied stratum keeps its old centroid (it may win rows back next round).
        keep = norms[:, 0] == 0
        sums[keep] = centroids.T[keep]
        norms[keep] = 1.0
        centroids = (sums / norms).T
    return labels


def _kmeans_plus_plus(pool: PoolOps, k: int, seed: int) -> torch.Tensor:
    """(k, d) starting centroids: a first row drawn uniformly, then each next row drawn with
    probability proportional to its squared cosine distance ``(1 - max cos)^2`` to the rows
    drawn so far (Arthur & Vassilvitskii 2007), so the starts spread over the groups. One
    projection pass per centroid."""
    generator = torch.Generator().manual_seed(seed)
    first = int(torch.randint(pool.n, (1,), generator=generator))
    chosen = [first]
    nearest = pool.project(pool.fetch(torch.tensor([first])).T)[:, 0]  # (n,) max cos so far
    for _ in range(1, k):
        weights = (1.0 - nearest).clamp(min=0.0) ** 2
        if float(weights.sum()) <= 0.0:  # every row coincides with a chosen one
            break
        row = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(row)
        similarity = pool.project(pool.fetch(torch.tensor([row])).T)[:, 0]
        nearest = torch.maximum(nearest, similarity)
    rows = pool.fetch(torch.tensor(chosen))
    if len(chosen) < k:  # pad with copies; the extra strata stay empty
        rows = torch.cat([rows, rows[:1].expand(k - len(chosen), -1)])
    return rows


def split_budget(sizes: list[int], n_pick: int) -> list[int]:
    """Picks per stratum: proportional to ``sizes`` (largest remainder, ties to the lower
    stratum), never more than a stratum holds, summing to ``min(n_pick, sum(sizes))``."""
    total = sum(sizes)
    n_pick = min(n_pick, total)
    if n_pick == 0:
        return [0] * len(sizes)
    quotas = [n_pick * size / total for size in sizes]
    shares = [min(size, math.floor(q)) for size, q in zip(sizes, quotas, strict=True)]
    # Hand out what is left by largest remainder, skipping full strata.
    order = sorted(range(len(sizes)), key=lambda s: (-(quotas[s] - math.floor(quotas[s])), s))
    while sum(shares) < n_pick:
        for s in order:
            if sum(shares) == n_pick:
                break
            if shares[s] < sizes[s]:
                shares[s] += 1
    return shares
