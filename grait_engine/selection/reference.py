"""Literal N x N implementations of stages 4-5, the reference the fast code is tested against.

Quadratic memory: for tests and ``bench/selection_scale.py`` only, never for jobs. They take the
explicit similarity matrices of METHOD.md (``S_II = F_idk F_idk^T``, ``S_IA = F_idk F_ans^T``)
and follow the text step by step, with the same tie rule as ``greedy.first_near_max``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grait_engine.selection.greedy import first_near_max

F64 = torch.float64


@dataclass(frozen=True)
class ReferenceGreedy:
    """``order`` (k,) pool positions in pick order, ``scores`` (k,) at pick time, ``final``
    (n,) scores after the loop."""

    order: torch.Tensor
    scores: torch.Tensor
    final: torch.Tensor


def similarity_matrices(
    f_idk: torch.Tensor, f_ans_ik_sel: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``S_II`` (n, n) and ``S_IA`` (n, m) in float64 from pool rows (n, d) and ik_sel rows."""
    f_idk = f_idk.to(F64)
    return f_idk @ f_idk.T, f_idk @ f_ans_ik_sel.to(F64).T


def reference_greedy(s_ia: torch.Tensor, s_ii: torch.Tensor, n_pick: int) -> ReferenceGreedy:
    """METHOD.md 4.2 verbatim: ``s_j = sum_i S_IA[j, i]``, then argmax / add ``S_II[:, j*]``."""
    scores = s_ia.sum(1)
    available = torch.ones(len(scores), dtype=torch.bool)
    order, picked = [], []
    for _ in range(min(n_pick, len(scores))):
        j = first_near_max(scores.masked_fill(~available, float("-inf")))
        order.append(j)
        picked.append(float(scores[j]))
        available[j] = False
        scores = scores + s_ii[:, j]
    return ReferenceGreedy(
        torch.tensor(order, dtype=torch.int64), torch.tensor(picked, dtype=F64), scores
    )


def reference_code_literal(s_ia: torch.Tensor, s_ii: torch.Tensor, n_pick: int) -> torch.Tensor:
    """The released script: run the greedy, then keep the n_pick lowest-scoring leftovers."""
    run = reference_greedy(s_ia, s_ii, n_pick)
    left = torch.ones(len(run.final), dtype=torch.bool)
    left[run.order] = False
    rest = torch.nonzero(left).flatten()
    return rest[torch.sort(run.final[rest], stable=True).indices[:n_pick]]


def reference_o1_top(s_ii: torch.Tensor, n_pick: int) -> torch.Tensor:
    """Top n_pick by mean ``S_II`` to the whole idk pool (``s_ii`` is the pool's (n, n))."""
    return torch.sort(s_ii.mean(1), descending=True, stable=True).indices[:n_pick]


def reference_alpha(s_ii_to_ik: torch.Tensor, s_ii_to_idk: torch.Tensor) -> torch.Tensor:
    """``alpha_j = mean_i S_II[j, i in ik] - mean_k S_II[j, k in idk]`` from the (k, |ik|)
    and (k, |idk|) blocks of the selected rows."""
    return s_ii_to_ik.mean(1) - s_ii_to_idk.mean(1)


def reference_weights(
    alpha: torch.Tensor, temperature: float, sign: int, mean_weight: float
) -> torch.Tensor:
    """``mean_weight * N_idk * softmax(sign * alpha / T)`` with the library softmax."""
    return mean_weight * len(alpha) * torch.softmax(sign * alpha.to(F64) / temperature, dim=0)
