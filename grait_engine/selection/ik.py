"""ik selection (METHOD.md stage 4.1): the top ``N_ik`` ik items by correctness ``c_i``."""

from __future__ import annotations

import torch


def select_ik(correctness: torch.Tensor, n_pick: int) -> torch.Tensor:
    """(min(n_pick, n),) positions of the highest ``correctness`` (n,), best first.

    Positions follow ascending store rows, so the stable sort breaks ties by lowest row.
    """
    order = torch.sort(correctness.to(torch.float64), descending=True, stable=True).indices
    return order[: max(0, n_pick)]
