"""Training examples, the weighted loss and the learning-rate schedule (METHOD.md stage 6).

Loss of one optimiser step over the samples ``S`` it consumes (all its micro-batches)::

    L_step = sum_{i in S} w_i * l_i / |S|

where ``l_i`` is sample i's NLL over its target tokens (prompt masked, reduced as
``TrainingConfig.target_loss`` says, by default their mean; ``features.sequences.per_sample_loss``). Each micro-batch contributes its share
``sum_{i in mb} w_i * l_i / |S|``, so gradient accumulation gives exactly the gradient of
``L_step``, and all-ones weights give the plain SFT loss (the mean of per-sample losses).
Normalising by the sample count, not by the weight sum, keeps the total refusal pressure set
by the weights (stage 5's ``mean_weight``) instead of dividing it away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from grait_engine.features.sequences import Encoded, collate, per_sample_loss
from grait_engine.records.item import Item


@dataclass(frozen=True)
class Example:
    """One training example: ``item``, whether its target is the refusal, and its ``weight``."""

    item: Item
    refuse: bool
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"example {self.item.id!r}: weight must be finite and >= 0")


def weighted_loss(
    model: torch.nn.Module,
    sequences: Sequence[Encoded],
    weights: Sequence[float],
    n_step: int,
    pad_id: int,
    target_loss: str = "mean",
) -> torch.Tensor:
    """Scalar ``sum_i w_i * l_i / n_step`` over one micro-batch (right-padded, one forward).

    ``n_step``: the number of samples in the whole optimiser step (see the module doc);
    ``target_loss``: how ``l_i`` reduces its target tokens (``knobs.TARGET_LOSSES``).
    """
    device = next(p for p in model.parameters()).device
    losses = per_sample_loss(model, collate(sequences, pad_id, device), target_loss)  # (b,)
    w = torch.tensor(list(weights), dtype=losses.dtype, device=device)
    return (w * losses).sum() / n_step


def steps_per_epoch(n_examples: int, batch_size: int, grad_accum: int) -> int:
    """Optimiser steps in one pass: ``ceil(n / (batch_size * grad_accum))``."""
    return math.ceil(n_examples / (batch_size * grad_accum))


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Linear-warmup length: ``ceil(warmup_ratio * total_steps)`` (0 for a zero ratio)."""
    return math.ceil(warmup_ratio * total_steps)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak lr for optimiser step ``step`` (0-based).

    Linear warmup ``(step + 1) / (warmup + 1)`` for ``step < warmup`` (never 0, so no step is
    wasted), then cosine from 1 down to 0 at ``step == total``:
    ``0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))``.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def epoch_order(n_examples: int, seed: int, epoch: int) -> list[int]:
    """The seeded example permutation of ``epoch``, regenerated identically on resume."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_examples, generator=generator).tolist()


def step_rows(
    order: Sequence[int], step_in_epoch: int, batch_size: int, grad_accum: int
) -> list[list[int]]:
    """Example indices of the micro-batches of one optimiser step (the last may be short)."""
    per_step = batch_size * grad_accum
    rows = list(order[step_in_epoch * per_step : (step_in_epoch + 1) * per_step])
    return [rows[s : s + batch_size] for s in range(0, len(rows), batch_size)]
