"""AUROC for acceptance checks of the probe against a known ground truth. Torch-free."""

from __future__ import annotations

from collections.abc import Sequence


def auroc(scores: Sequence[float], labels: Sequence[bool | int]) -> float:
    """Area under the ROC curve of ``scores`` for the binary ``labels`` (1/True = positive).

    Rank-based (Mann-Whitney U): the probability that a random positive scores above a random
    negative, ties counting one half (tied scores share their mean rank). O(n log n).
    Raises ValueError for mismatched lengths or when one class is absent.
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    n_pos = sum(1 for label in labels if label)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative label")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        mean_rank = (start + end) / 2 + 1  # ranks are 1-based; a tie group shares its mean
        for k in range(start, end + 1):
            ranks[order[k]] = mean_rank
        start = end + 1
    positive_rank_sum = sum(r for r, label in zip(ranks, labels, strict=True) if label)
    u = positive_rank_sum - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)
