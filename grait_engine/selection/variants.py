"""idk selection variants (METHOD.md stage 4): greedy, stratified, o1_top, random, code_literal.

All work on pool positions (0..n-1 = ascending store rows) and return them in selection
order with the score each item was selected on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from grait_engine.selection.greedy import GreedyTuning, greedy_select
from grait_engine.selection.pool import PoolOps
from grait_engine.selection.strata import spherical_kmeans, split_budget, strata_count

F64 = torch.float64


@dataclass(frozen=True)
class IdkPicks:
    """``order`` (k,) positions; ``scores`` (k,) float64 or None (random has no score);
    ``notes`` for the report; ``passes`` over the pool and greedy block counts."""

    order: torch.Tensor
    scores: torch.Tensor | None
    notes: tuple[str, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)


def pick_idk(
    variant: str,
    n_pick: int,
    pool: PoolOps,
    *,
    answer_sum: torch.Tensor,
    idk_mean: torch.Tensor,
    seed: int,
    tuning: GreedyTuning | None = None,
    on_block: Callable[[int, int], None] | None = None,
) -> IdkPicks:
    """Select ``min(n_pick, n)`` items of the pool.

    ``answer_sum`` (d,): sum of F_ans over the selected ik items (the greedy's start, since
    ``sum_i S_IA[j, i] = <F_j, sum_i F_ans[i]>``); ``idk_mean`` (d,): mean F_idk over the whole
    idk pool (o1_top's score). ``seed`` drives ``random`` only.
    """
    n_pick = min(n_pick, pool.n)
    if variant == "random":
        generator = torch.Generator().manual_seed(seed)
        order = torch.sort(torch.randperm(pool.n, generator=generator)[:n_pick]).values
        return IdkPicks(order, None)
    if variant == "o1_top":
        mean_sim = pool.project(idk_mean[:, None])[:, 0]
        order = torch.sort(mean_sim, descending=True, stable=True).indices[:n_pick]
        return IdkPicks(order, mean_sim[order], stats={"passes": 1})
    if variant not in ("greedy", "code_literal", "stratified"):
        raise ValueError(f"unknown variant {variant!r}")
    base = pool.project(answer_sum[:, None])[:, 0]
    if not torch.isfinite(base).all():
        raise ValueError("features contain non-finite values")
    if variant == "stratified":
        return _stratified(base, n_pick, pool, seed, tuning, on_block)
    run = greedy_select(base, n_pick, pool, tuning or GreedyTuning(), on_block)
    stats = {
        "passes": run.passes + 1,
        "blocks": run.blocks,
        "cut": run.cut,
        "fallbacks": run.fallbacks,
    }
    if variant == "greedy":
        return IdkPicks(run.order, run.scores, stats=stats)
    if n_pick == pool.n:  # budget >= pool: every variant takes the whole pool
        note = "code_literal: N_idk covers the pool, no leftovers: took all in greedy order"
        return IdkPicks(run.order, run.scores, (note,) if n_pick else (), stats)
    return _lowest_leftovers(run.order, run.final, n_pick, stats)


def _lowest_leftovers(
    greedy_order: torch.Tensor, final: torch.Tensor, n_pick: int, stats: dict[str, int]
) -> IdkPicks:
    # The released script's last line: after the greedy loop, keep the n_pick items LEFT
    # with the lowest final scores (ascending, stable), not the greedy's picks.
    left = torch.ones(len(final), dtype=torch.bool)
    left[greedy_order] = False
    rest = torch.nonzero(left).flatten()
    order = rest[torch.sort(final[rest], stable=True).indices[:n_pick]]
    notes: tuple[str, ...] = ()
    if len(order) < n_pick:
        notes = (
            f"code_literal: only {len(order)} items left after {len(greedy_order)} greedy "
            f"steps (pool {len(final)}): took them",
        )
    return IdkPicks(order, final[order], notes, stats)


def _stratified(
    base: torch.Tensor,
    n_pick: int,
    pool: PoolOps,
    seed: int,
    tuning: GreedyTuning | None,
    on_block: Callable[[int, int], None] | None,
) -> IdkPicks:
    """The greedy run inside each stratum of the pool (``strata``), with a budget share
    proportional to the stratum's size. Picks come stratum by stratum, each in its greedy
    order; ``scores`` are the greedy gains within the stratum."""
    k = strata_count(n_pick, pool.n)
    labels = spherical_kmeans(pool, k, seed=seed)
    members = [torch.nonzero(labels == s).flatten() for s in range(k)]
    shares = split_budget([len(m) for m in members], n_pick)
    orders, scores, done = [], [], 0
    # Full passes (the start scores and k-means) and passes over single strata (greedy).
    stats = {
        "passes": pool.passes,
        "stratum_passes": 0,
        "strata": sum(1 for m in members if len(m)),
    }
    for positions, share in zip(members, shares, strict=True):
        if share == 0:
            continue

        def stratum_block(step: int, _total: int, offset: int = done) -> None:
            if on_block is not None:
                on_block(offset + step, n_pick)

        run = greedy_select(base[positions], share, pool.subset(positions), tuning, stratum_block)
        orders.append(positions[run.order])
        scores.append(run.scores)
        done += share
        stats["stratum_passes"] += run.passes
    order = torch.cat(orders) if orders else torch.zeros(0, dtype=torch.int64)
    picked = torch.cat(scores) if scores else torch.zeros(0, dtype=F64)
    return IdkPicks(order, picked, stats=stats)
