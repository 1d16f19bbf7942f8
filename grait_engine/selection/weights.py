"""Adaptive idk weights (METHOD.md stage 5).

``alpha_j = <F_j, mean_ik F_idk> - <F_j, mean_idk F_idk>``: how much more the refusal
gradient of item j agrees with the known questions than with the unknown ones (a driver of
over-refusal when large). ``w = mean_weight * N_idk * softmax(sign * alpha / T)``.
"""

from __future__ import annotations

import torch

F64 = torch.float64


def alpha_scores(
    features: torch.Tensor, ik_mean: torch.Tensor, idk_mean: torch.Tensor
) -> torch.Tensor:
    """(k,) float64 alpha of the selected rows ``features`` (k, d) given the pool means (d,).

    Each mean similarity is one dot product with a mean feature (no N x N matrix).
    """
    features = features.to(F64)
    return features @ ik_mean.to(F64) - features @ idk_mean.to(F64)


def adaptive_weights(
    alpha: torch.Tensor, temperature: float, sign: int, mean_weight: float
) -> torch.Tensor:
    """(k,) float64 weights, mean exactly ``mean_weight`` up to rounding, all > 0 unless
    ``sign * alpha / T`` spans more than ~745 (float64 exp underflow; the stage notes it).

    Stable softmax in float64: the logits are shifted by their max before ``exp``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if len(alpha) == 0:
        return torch.zeros(0, dtype=F64)
    logits = sign * alpha.to(F64) / temperature
    exps = torch.exp(logits - logits.max())
    return mean_weight * len(alpha) * exps / exps.sum()


def unit_weights(k: int) -> torch.Tensor:
    """``weighting = none``: (k,) ones."""
    return torch.ones(k, dtype=F64)
