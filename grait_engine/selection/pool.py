"""The idk pool as the greedy sees it: gather a few rows, or project every row on vectors.

Two implementations of ``PoolOps``: ``StorePool`` streams memory-mapped shards (memory
bounded by one block, pools larger than RAM work) and ``MatrixPool`` holds a small matrix
in memory (tests, small jobs). Both compute in float64 from the stored float32 (or half)
values: the greedy compares sums of thousands of dot products, and float64 keeps those sums
far more precise than the tie tolerance (see ``greedy.TIE_RTOL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from grait_engine.features_store import FeatureStore

F64 = torch.float64


class PoolOps(Protocol):
    """``n`` rows of dimension ``d``; positions are 0..n-1 (ascending store rows).
    ``passes`` counts the passes over the pool so far (``project`` and ``group_sums``)."""

    n: int
    passes: int

    def fetch(self, positions: torch.Tensor) -> torch.Tensor:
        """(k, d) float64 rows at ``positions`` (k,)."""
        ...

    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, k) float64 = rows @ ``vectors`` (d, k): one pass over the pool."""
        ...

    def group_sums(self, labels: torch.Tensor, k: int) -> torch.Tensor:
        """(k, d) float64 sums of the rows with each label (``labels`` (n,) in 0..k-1):
        one pass over the pool."""
        ...

    def subset(self, positions: torch.Tensor) -> PoolOps:
        """The pool of the rows at ``positions`` (strictly increasing), in that order."""
        ...


class MatrixPool:
    """An in-memory pool: ``features`` (n, d), converted once to float64."""

    def __init__(self, features: torch.Tensor) -> None:
        self.features = features.to(F64)
        self.n = len(features)
        self.passes = 0

    def fetch(self, positions: torch.Tensor) -> torch.Tensor:
        return self.features[positions]

    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return self.features @ vectors

    def group_sums(self, labels: torch.Tensor, k: int) -> torch.Tensor:
        self.passes += 1
        sums = torch.zeros(k, self.features.shape[1], dtype=F64)
        return sums.index_add_(0, labels, self.features)

    def subset(self, positions: torch.Tensor) -> MatrixPool:
        return MatrixPool(self.features[positions])


class StorePool:
    """Rows ``rows`` (strictly increasing store rows) of feature ``name`` in ``store``."""

    def __init__(self, store: FeatureStore, name: str, rows: torch.Tensor, block_rows: int = 4096):
        self.store, self.name, self.rows, self.block_rows = store, name, rows, block_rows
        self.n = len(rows)
        self.passes = 0

    def fetch(self, positions: torch.Tensor) -> torch.Tensor:
        return self.store.gather(self.name, self.rows[positions], dtype=F64)

    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        out = torch.empty(self.n, vectors.shape[1], dtype=F64)
        # One float64 staging buffer reused for every block. Dense blocks arrive as their
        # whole memory-mapped span: converting and multiplying the few extra rows is cheaper
        # than gathering the wanted rows first (one copy instead of two).
        staging = torch.empty(0, self.store.d, dtype=F64)
        blocks = self.store.iter_blocks(
            self.name, self.rows, block_rows=self.block_rows, spans=True
        )
        for block in blocks:
            size, target = len(block.values), out[block.offset : block.offset + len(block.rows)]
            staging = _at_least(staging, size)
            staging[:size].copy_(block.values)
            if block.index is None:
                torch.matmul(staging[:size], vectors, out=target)
            else:
                target.copy_((staging[:size] @ vectors)[block.index])
        return out

    def group_sums(self, labels: torch.Tensor, k: int) -> torch.Tensor:
        self.passes += 1
        groups = [self.rows[labels == g] for g in range(k)]
        return group_sums(self.store, self.name, groups, self.block_rows)[0]

    def subset(self, positions: torch.Tensor) -> StorePool:
        return StorePool(self.store, self.name, self.rows[positions], self.block_rows)


def group_sums(
    store: FeatureStore, name: str, groups: Sequence[torch.Tensor], block_rows: int = 4096
) -> tuple[torch.Tensor, float]:
    """Sums of feature ``name`` over disjoint row groups, in one pass.

    ``groups``: g tensors of store rows (any order). Returns ((g, d) float64 sums,
    max |row norm - 1| over the rows read). Each block is converted once to float64 and
    reduced with a (g, m) 0/1 membership matrix, so the sums accumulate in float64.
    """
    labels = torch.cat(
        [torch.full((len(rows),), k) for k, rows in enumerate(groups)] or [torch.zeros(0)]
    )
    union = torch.cat([rows.to(torch.int64) for rows in groups] or [torch.zeros(0)]).to(torch.int64)
    union, order = torch.sort(union)
    labels = labels.to(torch.int64)[order]
    if len(union) > 1 and bool((union[1:] == union[:-1]).any()):
        raise ValueError("row groups overlap")
    sums = torch.zeros(len(groups), store.d, dtype=F64)
    staging = torch.empty(0, store.d, dtype=F64)
    deviation = 0.0
    for block in store.iter_blocks(name, union, block_rows=block_rows, spans=True):
        size, count = len(block.values), len(block.rows)
        staging = _at_least(staging, size)
        staging[:size].copy_(block.values)
        index = torch.arange(count) if block.index is None else block.index
        member = torch.zeros(len(groups), size, dtype=F64)
        member[labels[block.offset : block.offset + count], index] = 1.0
        sums += member @ staging[:size]
        norms = torch.linalg.vector_norm(staging[:size], dim=1)[index]
        deviation = max(deviation, float((norms - 1.0).abs().max()))
    return sums, deviation


def _at_least(buffer: torch.Tensor, rows: int) -> torch.Tensor:
    # Grow-only staging buffer: allocated once per pass at the largest block size.
    return buffer if len(buffer) >= rows else torch.empty(rows, buffer.shape[1], dtype=buffer.dtype)
