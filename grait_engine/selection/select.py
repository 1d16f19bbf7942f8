"""Selection and weighting in memory (METHOD.md stages 4-5): ``compute_selection``.

The stage around it (files, reuse, callbacks) is ``selection.stage.run_selection``.

Cost: one pass over the idk features of both pools (means), one over the idk pool (greedy
start), then about ``N_idk / b`` greedy verification passes (see ``greedy``; 7 at N =
100,000, N_idk = 2,000), each streaming memory-mapped shards, plus small gathers. Never an
N x N matrix. About a minute at N = 100,000, d = 8192 on 2 CPU cores
(``bench/selection_scale.py``), so the stage does not checkpoint: a killed run starts over.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from grait_engine.features_store import FeatureStore
from grait_engine.selection.config import SelectionConfig
from grait_engine.selection.greedy import GreedyTuning
from grait_engine.selection.ik import select_ik
from grait_engine.selection.inputs import PoolSplit, SelectionInputError
from grait_engine.selection.pool import StorePool, group_sums
from grait_engine.selection.report import SelectionOutcome
from grait_engine.selection.variants import pick_idk
from grait_engine.selection.weights import adaptive_weights, alpha_scores, unit_weights

NORM_TOLERANCE = 1e-3


def compute_selection(
    config: SelectionConfig,
    split: PoolSplit,
    store: FeatureStore,
    *,
    seed: int = 0,
    tuning: GreedyTuning | None = None,
    block_rows: int = 4096,
    on_block: Callable[[int, int], None] | None = None,
) -> SelectionOutcome:
    """Stages 4-5 in memory (no files written); see ``stage.run_selection``.

    ``on_block(done, total)`` runs before the greedy passes and after each block of idk
    picks (the stage's progress and cancel point)."""
    ik_rows, ik_order = _sorted_rows(store, split.ik_ids, "ik_ids")
    ik_correctness = torch.tensor(split.ik_correctness, dtype=torch.float64)[ik_order]
    idk_rows, _ = _sorted_rows(store, split.idk_ids, "idk_ids")
    notes = _budget_notes(config, len(ik_rows), len(idk_rows))
    ik_pick = select_ik(ik_correctness, config.n_ik)
    ik_sel_rows = ik_rows[ik_pick]
    if on_block is not None:
        on_block(0, min(config.n_idk, len(idk_rows)))  # a cancel point before the passes
    answer_sum = group_sums(store, "ans", [ik_sel_rows], block_rows)[0][0]
    ik_mean, idk_mean, deviation = _pool_means(store, ik_rows, idk_rows, block_rows)
    pool = StorePool(store, "idk", idk_rows, block_rows)
    picks = pick_idk(
        config.variant,
        config.n_idk,
        pool,
        answer_sum=answer_sum,
        idk_mean=idk_mean,
        seed=seed,
        tuning=tuning,
        on_block=on_block,
    )
    chosen_rows = idk_rows[picks.order]
    alpha = alpha_scores(store.gather("idk", chosen_rows, dtype=torch.float64), ik_mean, idk_mean)
    if config.weighting in ("adaptive", "dynamic"):  # dynamic: the fine-tune's start
        weights = adaptive_weights(alpha, config.temperature, config.sign, config.mean_weight)
    else:
        weights = unit_weights(len(alpha))
    notes += picks.notes + _numeric_notes(weights, len(ik_rows), deviation)
    return SelectionOutcome(
        ik_ids=tuple(store.ids[r] for r in ik_sel_rows.tolist()),
        ik_correctness=ik_correctness[ik_pick],
        idk_ids=tuple(store.ids[r] for r in chosen_rows.tolist()),
        idk_scores=picks.scores,
        alpha=alpha,
        weights=weights,
        notes=notes,
        pools={"ik": len(ik_rows), "idk": len(idk_rows)},
        stats={"feature_norm_max_deviation": deviation, "greedy": picks.stats or None},
    )


def _pool_means(
    store: FeatureStore, ik_rows: torch.Tensor, idk_rows: torch.Tensor, block_rows: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mean F_idk over the whole ik and idk pools ((d,) float64 each; one pass) and the
    largest |row norm - 1| seen. An empty pool has mean 0 (its alpha term vanishes)."""
    (ik_sum, idk_sum), deviation = group_sums(store, "idk", [ik_rows, idk_rows], block_rows)
    return ik_sum / max(len(ik_rows), 1), idk_sum / max(len(idk_rows), 1), deviation


def _sorted_rows(
    store: FeatureStore, ids: tuple[str, ...], field: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Store rows of ``ids`` in ascending order (ties everywhere break by lowest row), and
    the permutation of ``ids`` that gives them (to align values given per id)."""
    try:
        rows = store.rows_of(ids)
    except KeyError as error:
        raise SelectionInputError(
            field, f"id {error.args[0]!r} is not in the feature store"
        ) from error
    rows, perm = torch.sort(rows)
    return rows, perm


def _budget_notes(config: SelectionConfig, n_ik_pool: int, n_idk_pool: int) -> tuple[str, ...]:
    notes = []
    if config.n_ik > n_ik_pool:
        notes.append(f"N_ik={config.n_ik} larger than ik pool ({n_ik_pool}): took all")
    if config.n_idk > n_idk_pool:
        notes.append(f"N_idk={config.n_idk} larger than idk pool ({n_idk_pool}): took all")
    return tuple(notes)


def _numeric_notes(weights: torch.Tensor, n_ik_pool: int, norm_deviation: float) -> tuple[str, ...]:
    notes = []
    if n_ik_pool == 0:
        notes.append("ik pool is empty: alpha uses 0 for the ik mean similarity")
    if len(weights) and bool((weights == 0).any()):
        zeros = int((weights == 0).sum())
        notes.append(f"{zeros} weights underflowed to 0 (sign * alpha / T spans > 745)")
    if norm_deviation > NORM_TOLERANCE:
        notes.append(
            f"feature rows are not L2-normalised (max |norm - 1| = {norm_deviation:.3g}): used as stored"
        )
    return tuple(notes)
