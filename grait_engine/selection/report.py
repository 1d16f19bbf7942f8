"""The ``selection.json`` document: selected items, the knobs used, notes and summary stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.selection.config import SelectionConfig


@dataclass(frozen=True)
class SelectionOutcome:
    """What the selection computed, in selection order.

    ik: ``ik_ids`` (a,), ``ik_correctness`` (a,). idk: ``idk_ids`` (k,), ``idk_scores`` (k,)
    or None (random), ``alpha`` (k,), ``weights`` (k,). ``pools``: pool sizes; ``stats``:
    pass counts and the largest |row norm - 1| seen.
    """

    ik_ids: tuple[str, ...]
    ik_correctness: torch.Tensor
    idk_ids: tuple[str, ...]
    idk_scores: torch.Tensor | None
    alpha: torch.Tensor
    weights: torch.Tensor
    notes: tuple[str, ...]
    pools: dict[str, int]
    stats: dict[str, Any]


def describe(values: torch.Tensor | None) -> dict[str, float] | None:
    """``{"min", "mean", "max"}`` of a 1-D tensor, or None when empty or absent."""
    if values is None or len(values) == 0:
        return None
    values = values.to(torch.float64)
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


def selection_document(
    config: SelectionConfig, seed: int, outcome: SelectionOutcome
) -> dict[str, Any]:
    """The JSON document: ik items first (best ``c_i`` first), then idk items in selection
    order. An ik item's score is its ``c_i``; an idk item's score is the one it was selected
    on (greedy gain at pick time, mean similarity for o1_top, final greedy score for
    code_literal, null for random)."""
    items: list[dict[str, Any]] = [
        {"id": item_id, "role": "ik", "score": float(c), "weight": 1.0}
        for item_id, c in zip(outcome.ik_ids, outcome.ik_correctness.tolist(), strict=True)
    ]
    scores = outcome.idk_scores.tolist() if outcome.idk_scores is not None else None
    for k, item_id in enumerate(outcome.idk_ids):
        items.append(
            {
                "id": item_id,
                "role": "idk",
                "score": None if scores is None else float(scores[k]),
                "weight": float(outcome.weights[k]),
                "alpha": float(outcome.alpha[k]),
            }
        )
    return {
        "variant": config.variant,
        "knobs": {**config.knobs(), "seed": seed},
        "n_ik_requested": config.n_ik,
        "n_idk_requested": config.n_idk,
        "n_ik": len(outcome.ik_ids),
        "n_idk": len(outcome.idk_ids),
        "notes": list(outcome.notes),
        "items": items,
        "summary": {
            "weights": describe(outcome.weights),
            "alpha": describe(outcome.alpha),
            "score": describe(outcome.idk_scores),
            "ik_correctness": describe(outcome.ik_correctness),
            "pools": outcome.pools,
            **outcome.stats,
        },
    }
