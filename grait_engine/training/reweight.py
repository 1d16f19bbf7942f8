"""Dynamic idk weights during the fine-tune (``selection.weighting = dynamic``).

The paper's stage 5 computes ``alpha`` once, from the warmup model's features, and the
weights stay fixed for the whole fine-tune; its authors name recomputing them as training
goes as future work. Here, every ``Reweighting.every`` optimiser steps (by default at the
start of each epoch after the first), the training stage computes the refusal-target
features of its own examples from the adapter being trained (per-sample LoRA gradients,
preconditioned with this run's AdamW moments, projected and L2-normalised exactly as stage 3
does) and sets each refusal example's weight to stage 5's formula::

    alpha_j = <F_j, mean_{ik examples} F_idk> - <F_j, mean_{idk examples} F_idk>
    w_j     = mean_weight * N_idk * softmax(sign * alpha / T)_j

The means are over the examples being trained on (the selected ik and idk items), not the
whole pools of stage 5: recomputing pool-wide features every few steps would cost a pass
over the pool each time, while this costs one gradient pass over the ``N_idk + N_ik``
training examples (refusal targets only). Answered (ik) examples keep weight 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from grait_engine.features.compute import FeatureContext, batched_features
from grait_engine.features.pergrad import lora_layout
from grait_engine.features.projection import Projector, resolve_projection_dtype
from grait_engine.memory import Batching, budget_bytes
from grait_engine.selection.weights import adaptive_weights, alpha_scores
from grait_engine.training.loss import Example

# At most this many items' gradients are projected together (their (n, D) buffer is the
# step's peak memory), fewer when the device's free memory holds fewer.
MAX_GROUP_ITEMS = 256


@dataclass(frozen=True)
class Reweighting:
    """How the fine-tune recomputes its refusal weights.

    ``temperature``, ``sign``, ``mean_weight``: stage 5's formula (``SelectionConfig``);
    ``every``: optimiser steps between recomputations (None: at the start of every epoch
    after the first); ``dim``, ``eps``: the projection dimension and preconditioning epsilon
    (``FeaturesConfig.dim`` / ``precondition_eps``); ``seed``: the projection's seed.
    """

    temperature: float
    sign: int
    mean_weight: float
    every: int | None = None
    dim: int = 8192
    eps: float = 1e-8
    seed: int = 0

    def interval(self, steps_per_epoch: int) -> int:
        """Optimiser steps between recomputations (>= 1)."""
        return max(1, self.every if self.every is not None else steps_per_epoch)

    def due(self, step: int, steps_per_epoch: int, total: int) -> bool:
        """Whether the weights are recomputed before optimiser step ``step`` (0-based)."""
        return 0 < step < total and step % self.interval(steps_per_epoch) == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def refusal_features(
    model: torch.nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    optimizer: torch.optim.Optimizer,
    betas: tuple[float, float],
    reweighting: Reweighting,
    target_loss: str,
    batch_size: int,
    before_batch: Callable[[], None] | None = None,
) -> torch.Tensor:
    """(n, d) float32 unit rows: the refusal-target feature of every example, taken from
    ``model``'s current LoRA weights and ``optimizer``'s moments (stage 3's definition).

    ``model``: the PeftModel being trained (its LoRA weights require grad); it is put in eval
    mode for the pass (no dropout) and back in train mode after. Items are processed in
    groups of at most ``MAX_GROUP_ITEMS``; batches of ``batch_size`` sequences halve after
    running out of memory. The optimiser's ``.grad`` fields and the RNG are not touched.
    """
    layout = lora_layout(model)
    params = [module.weight for module in layout.modules]
    state = [optimizer.state.get(param, {}) for param in params]
    if not all("exp_avg" in s for s in state):
        raise ValueError("refusal_features needs the moments of at least one optimiser step")
    device = params[0].device
    exp_avg = torch.cat([s["exp_avg"].float().reshape(-1) for s in state]).to(device)
    exp_avg_sq = torch.cat([s["exp_avg_sq"].float().reshape(-1) for s in state]).to(device)
    projection_dtype = resolve_projection_dtype("auto", device)
    projector = Projector(
        layout.n_params, reweighting.dim, reweighting.seed, device, projection_dtype
    )
    ctx = FeatureContext(
        model,
        tokenizer,
        layout,
        exp_avg,
        exp_avg_sq,
        betas,
        reweighting.eps,
        projector,
        device,
        target_loss,
    )
    row_bytes = projector.row_dtype.itemsize
    fits = budget_bytes(device, None) // max(1, layout.n_params * row_bytes)
    group = max(1, min(MAX_GROUP_ITEMS, int(fits)))
    batching = Batching(batch_size, "train")
    items = [example.item for example in examples]
    rows = []
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for start in range(0, len(items), group):
                chunk = items[start : start + group]
                _, idk = batched_features(ctx, chunk, batching, before_batch, answers=False)
                rows.append(idk)
    finally:
        model.train(was_training)
    return torch.cat(rows) if rows else torch.zeros(0, projector.d)


def dynamic_weights(
    features: torch.Tensor, refuse: Sequence[bool], reweighting: Reweighting
) -> tuple[list[float], dict[str, float]]:
    """New weights of all examples from their refusal features ``features`` (n, d).

    ``refuse[i]``: example i is a refusal (idk) example. Answered examples get 1.0; refusal
    examples get stage 5's weights from alpha against the means over the two groups.
    Output: the (n,) weights as floats and a summary (``alpha_spread``, ``weight_min``,
    ``weight_max``) for the manifest and metrics.
    """
    is_idk = torch.tensor(list(refuse), dtype=torch.bool)
    if not bool(is_idk.any()):
        raise ValueError("dynamic weights need at least one refusal example")
    rows = features.to(torch.float64)
    idk_rows = rows[is_idk]
    ik_rows = rows[~is_idk]
    ik_mean = ik_rows.mean(0) if len(ik_rows) else torch.zeros(rows.shape[1], dtype=torch.float64)
    idk_mean = idk_rows.mean(0)
    alpha = alpha_scores(idk_rows, ik_mean, idk_mean)
    new = adaptive_weights(
        alpha, reweighting.temperature, reweighting.sign, reweighting.mean_weight
    )
    weights = [1.0] * len(refuse)
    for position, weight in zip(
        torch.nonzero(is_idk).flatten().tolist(), new.tolist(), strict=True
    ):
        weights[position] = float(weight)
    summary = {
        "alpha_spread": float(alpha.max() - alpha.min()) if len(alpha) else 0.0,
        "weight_min": float(new.min()) if len(new) else 1.0,
        "weight_max": float(new.max()) if len(new) else 1.0,
    }
    return weights, summary
