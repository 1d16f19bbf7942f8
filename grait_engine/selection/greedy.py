"""Exact greedy idk selection (METHOD.md stage 4.2) in linear memory and few passes.

The greedy: ``s_j = base_j``; repeat ``n_pick`` times: ``j* = argmax`` over the unselected,
then ``s_j += <F_j, F_j*>``. Done literally it reads the whole pool once per pick (``n_pick``
passes over ``n x d``: memory-bandwidth bound). Here picks are made in blocks, each costing
one pass with a matrix product instead of one pass per pick:

1. predict: take the ``K = min(2048, 4b)`` best unselected items by current score, build
   their ``K x K`` Gram matrix (float32: it only guides) and run the greedy restricted to
   them for ``b`` steps -> tentative picks ``p_1..p_b``;
2. verify: one pass ``P = F @ [F_p1 .. F_pb]`` (``n x b``) gives every item's exact score
   trajectory ``s_j + sum_{r'<r} P[j, r']`` before each step ``r``; the winner of each step
   is taken over ALL unselected items with the same rule as the literal greedy;
3. accept the longest prefix where the winner equals the prediction, add those columns of
   ``P`` to the scores, and adapt ``b`` (double on full acceptance, shrink otherwise).

Step 2 is the literal greedy's own computation, so every accepted pick is the literal
greedy's pick (by induction over steps); the prediction only decides how many picks one pass
can confirm. No norm bound is involved, so this holds for unnormalised rows too. The first
prediction of a block is always right (the candidates contain the winner, see
``_candidates``), so each pass accepts at least one pick; a single exact step is kept as a
defensive fallback.

Cost: the same ``~n_pick * n * d`` multiply-adds as the literal greedy (plus the columns of
wrong predictions), but as matrix products, and ``~n_pick / b`` passes over the pool
instead of ``n_pick``. Memory: ``O(n * b)`` for the verification, ``O(K^2)`` for the
prediction; never ``n x n``.

Ties: scores within ``TIE_RTOL * (1 + |max|)`` of the maximum count as equal and the lowest
position (= lowest store row) wins. Features are float32 (7 digits), so differences below
1e-9 relative carry no information, while float64 rounding of the sums stays far below it:
the brute-force reference and this implementation agree despite different summation orders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from grait_engine.selection.pool import PoolOps

F64 = torch.float64
TIE_RTOL = 1e-9


def tie_threshold(best: torch.Tensor) -> torch.Tensor:
    """Scores at or above this count as tied with ``best`` (elementwise)."""
    return best - TIE_RTOL * (1.0 + best.abs())


def first_near_max(scores: torch.Tensor) -> int:
    """Index of the greedy winner in a 1-D float64 score vector (``-inf`` = excluded)."""
    best = scores.max()
    return int((scores >= tie_threshold(best)).to(torch.uint8).argmax())


@dataclass(frozen=True)
class GreedyTuning:
    """Speed knobs; the result does not depend on them (tested)."""

    candidates: int = 2048  # K cap: the prediction uses the top min(K, 4b) items
    first_block: int = 128  # b for the first block
    max_block: int = 512  # b cap: the verification holds n x b float64 values (x3)
    min_block: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.min_block <= self.max_block or self.candidates < 1 or self.first_block < 1:
            raise ValueError(f"invalid greedy tuning {self}")


@dataclass(frozen=True)
class GreedyResult:
    """``order`` (k,) positions in pick order; ``scores`` (k,) score at pick time;
    ``final`` (n,) scores after all picks (meaningful for the unselected); ``passes`` over
    the pool, ``blocks``, ``cut`` blocks whose prediction was wrong before its end, and
    ``fallbacks`` (single exact steps)."""

    order: torch.Tensor
    scores: torch.Tensor
    final: torch.Tensor
    passes: int
    blocks: int
    cut: int
    fallbacks: int


def greedy_select(
    base: torch.Tensor,
    n_pick: int,
    pool: PoolOps,
    tuning: GreedyTuning | None = None,
    on_block: Callable[[int, int], None] | None = None,
) -> GreedyResult:
    """Run the greedy from initial scores ``base`` (n,) for ``min(n_pick, n)`` picks.

    ``pool`` gives rows by position and projections; ``on_block(done, total)`` is called
    before each block (progress, and the place to raise on cancel).
    """
    tuning = tuning or GreedyTuning()
    scores = base.to(F64).clone()
    n_pick = min(n_pick, pool.n)
    selected = torch.zeros(pool.n, dtype=torch.bool)
    order: list[torch.Tensor] = []
    picked: list[torch.Tensor] = []
    counts = {"passes": 0, "blocks": 0, "cut": 0, "fallbacks": 0}
    done, size = 0, tuning.first_block
    while done < n_pick:
        if on_block is not None:
            on_block(done, n_pick)
        masked = scores.masked_fill(selected, float("-inf"))
        steps = min(size, n_pick - done)
        picks, columns, pick_scores = _block(masked, pool, steps, tuning, counts)
        scores += columns[:, : len(picks)].sum(1)
        selected[picks] = True
        order.append(picks)
        picked.append(pick_scores)
        done += len(picks)
        grown = 2 * size if len(picks) == steps else 2 * len(picks)
        size = max(tuning.min_block, min(tuning.max_block, grown))
    return GreedyResult(
        order=torch.cat(order) if order else torch.zeros(0, dtype=torch.int64),
        scores=torch.cat(picked) if picked else torch.zeros(0, dtype=F64),
        final=scores,
        **counts,
    )


def _block(
    masked: torch.Tensor, pool: PoolOps, steps: int, tuning: GreedyTuning, counts: dict[str, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One predict + verify round from scores ``masked`` (n,) (-inf = selected).

    Returns the accepted picks (a,) with a >= 1, the (n, >= a) columns whose first a are
    their similarities to every row, and their scores at pick time (a,). Updates ``counts``.
    """
    unselected = int(torch.isfinite(masked).sum())
    cand = _candidates(masked, min(tuning.candidates, 4 * steps, unselected))
    feats = pool.fetch(cand)
    steps = min(steps, len(cand))
    # The prediction needs no float64 (verification decides); float32 halves its cost.
    gram = (feats.float() @ feats.float().T).double()
    local = _simulate(masked[cand], gram, steps)
    tentative = cand[local]
    columns = pool.project(feats[local].T)
    accepted, pick_scores = _verify(masked, columns, tentative)
    counts["passes"] += 1
    counts["blocks"] += 1
    counts["cut"] += int(accepted < steps)
    if accepted > 0:
        return tentative[:accepted], columns, pick_scores
    # Defensive only: _candidates always holds the winner, so the first prediction is right.
    winner = torch.tensor([first_near_max(masked)])
    counts["passes"] += 1
    counts["fallbacks"] += 1
    return winner, pool.project(pool.fetch(winner).T), masked[winner]


def _candidates(masked: torch.Tensor, k: int) -> torch.Tensor:
    """(k,) ascending positions of the k best unselected items.

    If more than k items tie with the maximum, the k lowest positions among them are taken,
    so the true winner (the lowest tied position) is always a candidate.
    """
    near = torch.nonzero(masked >= tie_threshold(masked.max())).flatten()
    if len(near) > k:
        return near[:k]
    best = torch.sort(masked, descending=True, stable=True).indices[:k]
    return torch.sort(best).values


def _simulate(start: torch.Tensor, gram: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy restricted to the candidates: (steps,) local indices, from scores ``start``
    (K,) and the candidates' Gram matrix ``gram`` (K, K)."""
    local = start.clone()
    picks = []
    for _ in range(steps):
        j = first_near_max(local)
        picks.append(j)
        local += gram[:, j]
        local[j] = float("-inf")
    return torch.tensor(picks, dtype=torch.int64)


def _verify(
    masked: torch.Tensor, columns: torch.Tensor, tentative: torch.Tensor
) -> tuple[int, torch.Tensor]:
    """Exact check of the tentative picks against every item of the pool.

    ``masked`` (n,) current scores, -inf for the selected; ``columns`` (n, b) with
    ``columns[:, r] = F @ F_{tentative[r]}``. Returns the number of leading picks that are
    the literal greedy's picks and their scores at pick time.
    """
    b = columns.shape[1]
    trajectory = torch.empty_like(columns)  # (n, b): scores before step r
    trajectory[:, 0] = masked
    if b > 1:
        torch.cumsum(columns[:, :-1], dim=1, out=trajectory[:, 1:])
        trajectory[:, 1:] += masked[:, None]
    # A tentative pick is no longer available at the later steps of the block.
    steps = torch.arange(b)
    later = steps[None, :] > steps[:, None]
    trajectory[tentative] = trajectory[tentative].masked_fill(later, float("-inf"))
    best = trajectory.max(0).values
    winners = (trajectory >= tie_threshold(best)[None, :]).to(torch.uint8).argmax(0)
    wrong = winners != tentative
    accepted = int(wrong.to(torch.uint8).argmax()) if wrong.any() else b
    return accepted, trajectory[tentative[:accepted], steps[:accepted]]
