"""``FeatureStore``: the read-only, memory-mapped view of a complete feature directory
(METHOD.md stage 3, output; the format and its names: ``features_format``).

Reading is memory-mapped (``safetensors.safe_open``): a block is a zero-copy view whose pages
are faulted in when touched and dropped with the tensor, so memory stays bounded by the block
size whatever the number of rows. Rows are expected to be L2-normalised (the features stage
does it); nothing here renormalises.

The writer is ``features_writer.FeatureWriter``; the error (``FeatureStoreError``) and
``shard_name`` are defined with the format in ``features_format``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from grait_engine.artifacts import read_manifest
from grait_engine.features_format import (
    IDS,
    NAMES,
    FeatureStoreError,
    ShardInfo,
    check_shard_header,
)


@dataclass(frozen=True)
class FeatureBlock:
    """Consecutive rows of a read request.

    ``offset``: position of this block's first row in the requested row order;
    ``rows``: (b,) int64 store row indices; ``values``: (b, d) features in the requested dtype.
    With ``index`` set (``iter_blocks(spans=True)`` only), ``values`` is instead the (m, d)
    contiguous span of store rows covering the block (m < 2b) and the requested rows are
    ``values[index]``: a consumer that can work on the whole span saves a gather copy.
    """

    offset: int
    rows: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor | None = None


class FeatureStore:
    """Read-only view of a complete feature directory (see the module docstring).

    ``open`` validates the manifest, ``ids.json`` and every shard header (names, shapes,
    contiguous row ranges); with ``verify=True`` it also re-hashes every file (slow: it reads
    all of them). Reads go through ``iter_blocks`` (streaming) or ``gather`` (small subsets).
    """

    def __init__(
        self,
        directory: Path,
        d: int,
        ids: tuple[str, ...],
        shards: tuple[ShardInfo, ...],
        manifest: dict[str, Any],
    ) -> None:
        self.directory, self.d, self.ids, self.shards = directory, d, ids, shards
        self.manifest = manifest  # as read: {"files": {name: sha256}, "d", "n", "shards", ...}
        self._row_of: dict[str, int] | None = None

    @property
    def n(self) -> int:  # number of items (rows)
        return len(self.ids)

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, verify: bool = False) -> FeatureStore:
        root = Path(directory)
        manifest = read_manifest(root, verify=verify)
        if manifest is None:
            raise FeatureStoreError(f"{root}: no complete manifest (features not finished?)")
        try:
            d, n = int(manifest["d"]), int(manifest["n"])
            shards = tuple(
                ShardInfo(s["name"], int(s["start"]), int(s["rows"])) for s in manifest["shards"]
            )
            ids = tuple(json.loads((root / IDS).read_text()))
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise FeatureStoreError(f"{root}: malformed manifest or ids.json ({error})") from error
        if len(ids) != n or len(set(ids)) != n:
            raise FeatureStoreError(
                f"{root}: ids.json has {len(ids)} ids ({len(set(ids))} unique), want {n}"
            )
        start = 0
        for shard in shards:
            if shard.start != start or shard.rows <= 0 or shard.name not in manifest["files"]:
                raise FeatureStoreError(f"{root}: shard {shard.name} breaks the row ranges")
            check_shard_header(root / shard.name, shard.rows, d)
            start = shard.stop
        if start != n:
            raise FeatureStoreError(f"{root}: shards hold {start} rows, manifest says {n}")
        return cls(root, d, ids, shards, manifest)

    def rows_of(self, ids: Sequence[str]) -> torch.Tensor:
        """(k,) int64 store rows of ``ids``; unknown ids raise ``KeyError`` naming the first."""
        if self._row_of is None:
            self._row_of = {item_id: row for row, item_id in enumerate(self.ids)}
        return torch.tensor([self._row_of[item_id] for item_id in ids], dtype=torch.int64)

    def iter_blocks(
        self,
        name: str,
        rows: torch.Tensor | None = None,
        *,
        block_rows: int = 4096,
        dtype: torch.dtype = torch.float32,
        spans: bool = False,
    ) -> Iterator[FeatureBlock]:
        """Stream ``name`` ("ans" or "idk") in blocks of at most ``block_rows`` rows.

        ``rows``: optional (k,) strictly increasing int64 store rows (default: all rows).
        Blocks never span two shards; a block is read as one contiguous slice when its rows
        are dense and run by run otherwise, so a sparse subset does not read whole shards.
        ``spans``: dense blocks come back as their covering span (see ``FeatureBlock``).
        """
        if name not in NAMES:
            raise FeatureStoreError(f"unknown feature {name!r}, want one of {NAMES}")
        rows = self._check_rows(rows)
        cuts = torch.searchsorted(rows, torch.tensor([s.stop for s in self.shards]))
        begin = 0
        for shard, end in zip(self.shards, cuts.tolist(), strict=True):
            if end == begin:
                continue
            with safe_open(str(self.directory / shard.name), framework="pt") as handle:
                view = handle.get_slice(name)
                for lo in range(begin, end, block_rows):
                    block = rows[lo : min(lo + block_rows, end)]
                    values, index = _read_rows(view, block - shard.start, dtype, spans)
                    yield FeatureBlock(lo, block, values, index)
            begin = end

    def gather(
        self, name: str, rows: torch.Tensor, *, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """(k, d) rows ``rows`` (any order, repeats allowed) of ``name``; for small subsets."""
        unique, inverse = torch.unique(rows.to(torch.int64), sorted=True, return_inverse=True)
        out = torch.empty(len(unique), self.d, dtype=dtype)
        for block in self.iter_blocks(name, unique, dtype=dtype):
            out[block.offset : block.offset + len(block.rows)] = block.values
        return out[inverse]

    def _check_rows(self, rows: torch.Tensor | None) -> torch.Tensor:
        if rows is None:
            return torch.arange(self.n, dtype=torch.int64)
        rows = torch.as_tensor(rows, dtype=torch.int64)
        if rows.ndim != 1:
            raise FeatureStoreError("rows must be a 1-D tensor of row indices")
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.n or (rows[1:] <= rows[:-1]).any()):
            raise FeatureStoreError(f"rows must be strictly increasing indices in [0, {self.n})")
        return rows


def _read_rows(
    view: Any, local: torch.Tensor, dtype: torch.dtype, spans: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    # Dense rows: one slice of the memory map. Sparse rows: one slice per run of consecutive
    # rows, so reading 2,000 scattered rows does not touch the whole shard.
    first, last = int(local[0]), int(local[-1])
    if last - first + 1 == len(local):
        return view[first : last + 1].to(dtype), None
    if last - first + 1 <= 2 * len(local):
        span = view[first : last + 1]
        return (span.to(dtype), local - first) if spans else (span[local - first].to(dtype), None)
    breaks = (torch.nonzero(local[1:] - local[:-1] != 1).flatten() + 1).tolist()
    bounds = [0, *breaks, len(local)]
    parts = [
        view[int(local[a]) : int(local[b - 1]) + 1]
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    return torch.cat(parts).to(dtype), None
