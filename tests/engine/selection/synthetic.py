"""Synthetic features for the selection tests: random, clustered, duplicated rows."""

from __future__ import annotations

from pathlib import Path

import torch

from grait_engine.features_writer import FeatureWriter


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=1)


def features(n: int, d: int, seed: int, kind: str = "random") -> torch.Tensor:
    """(n, d) float32 rows.

    random: unit Gaussian rows. clustered: 3 tight clusters (cosine ~0.8 inside, highly
    correlated). duplicates: every row repeated 3 times (exact ties). identical: one row n
    times. lowdim: unit rows in d=2 (many near-equal gains). unnormalised: norms in [0.5, 2].
    """
    generator = torch.Generator().manual_seed(seed)
    if kind == "clustered":
        centers = unit(torch.randn(3, d, generator=generator))
        labels = torch.randint(0, 3, (n,), generator=generator)
        return unit(2.0 * centers[labels] + torch.randn(n, d, generator=generator) / d**0.5)
    if kind == "duplicates":
        base = unit(torch.randn((n + 2) // 3, d, generator=generator))
        return base.repeat_interleave(3, dim=0)[:n].contiguous()
    if kind == "identical":
        return unit(torch.randn(1, d, generator=generator)).repeat(n, 1)
    if kind == "lowdim":
        return unit(torch.randn(n, 2, generator=generator))
    rows = unit(torch.randn(n, d, generator=generator))
    if kind == "unnormalised":
        rows = rows * (0.5 + 1.5 * torch.rand(n, 1, generator=generator))
    return rows


def write_store(
    directory: Path, ans: torch.Tensor, idk: torch.Tensor, shard_rows: int = 64
) -> list[str]:
    """Write a feature store with ids ``q0000, q0001, ...``; returns the ids."""
    ids = [f"q{i:04d}" for i in range(len(ans))]
    with FeatureWriter(directory, ans.shape[1], shard_rows=shard_rows) as writer:
        writer.append(ids, ans, idk)
    return ids
