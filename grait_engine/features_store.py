"""The on-disk format of gradient features (METHOD.md stage 3, output) and its reader/writer.

A feature directory holds, for ``n`` items and ``d`` feature dimensions:

- ``shard-00000.safetensors``, ``shard-00001.safetensors``, ...: each holds two tensors of
  shape ``(rows_k, d)``, ``ans`` (F_ans rows) and ``idk`` (F_idk rows), float32 by default
  (float16 / bfloat16 are accepted on read and converted), plus one metadata entry
  ``shard``: JSON ``{"start", "ids"}`` (the shard's first row and item ids) so an
  interrupted writer can resume. One entry, because safetensors writes several metadata
  keys in hash-map order, which would make identical shards differ byte-wise;
- ``ids.json``: the item ids in row order (row ``i`` of the store is ``ids[i]``);
- ``manifest.json``, written LAST (``artifacts.write_manifest``) with the sha256 of every file
  and ``{"d", "n", "dtype", "shards": [{"name", "start", "rows"}]}``. No manifest means the
  directory is incomplete and must not be read.

Reading is memory-mapped (``safetensors.safe_open``): a block is a zero-copy view whose pages
are faulted in when touched and dropped with the tensor, so memory stays bounded by the block
size whatever the number of rows. Rows are expected to be L2-normalised (the features stage
does it); nothing here renormalises.
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
from safetensors.torch import save as safetensors_bytes

from grait_engine.artifacts import MANIFEST, atomic_write_bytes, atomic_write_json, read_manifest
from grait_engine.artifacts import write_manifest as write_stage_manifest

NAMES = ("ans", "idk")
IDS = "ids.json"
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class FeatureStoreError(ValueError):
    """A feature directory that is incomplete, inconsistent, or used incorrectly."""


@dataclass(frozen=True)
class ShardInfo:
    """One shard file: rows ``start .. start + rows - 1`` of the store."""

    name: str
    start: int
    rows: int

    @property
    def stop(self) -> int:
        return self.start + self.rows


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


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


class FeatureWriter:
    """Appends feature rows and writes fixed-size shards, then ``ids.json`` and the manifest.

    Usage: ``with FeatureWriter(dir, d) as w: w.append(ids, ans, idk)``; leaving the block
    without an exception calls ``close()``. Each full shard is written atomically as soon as it
    fills, so memory is one shard buffer. With ``resume=True`` the complete shards already on
    disk are kept (``rows_written`` says how many rows to skip); otherwise stale shards are
    removed. A directory that already has a manifest is complete and is refused.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        d: int,
        *,
        shard_rows: int = 4096,
        dtype: torch.dtype = torch.float32,
        resume: bool = False,
    ) -> None:
        if d <= 0 or shard_rows <= 0:
            raise FeatureStoreError(f"d and shard_rows must be positive (got {d}, {shard_rows})")
        if dtype not in STORAGE_DTYPES.values():
            raise FeatureStoreError(f"storage dtype must be one of {sorted(STORAGE_DTYPES)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.directory / MANIFEST).exists():
            raise FeatureStoreError(f"{self.directory} is already complete (has a manifest)")
        self.d, self.shard_rows, self.dtype = d, shard_rows, dtype
        self._shards: list[ShardInfo] = []
        self._ids: list[str] = []
        self._buffer = {name: torch.empty(shard_rows, d, dtype=dtype) for name in NAMES}
        self._fill = 0
        self._closed = False
        self._adopt_shards() if resume else self._remove_shards(0)
        self._seen = set(self._ids)

    @property
    def rows_written(self) -> int:
        """Rows accepted so far (on disk or buffered)."""
        return len(self._ids)

    def append(self, ids: Sequence[str], ans: torch.Tensor, idk: torch.Tensor) -> None:
        """Add rows: ``ids`` (k,), ``ans`` and ``idk`` (k, d), finite; writes full shards."""
        if self._closed:
            raise FeatureStoreError("writer is closed")
        k = len(ids)
        self._check_append(ids, ans, idk)
        done = 0
        while done < k:
            take = min(k - done, self.shard_rows - self._fill)
            for name, values in (("ans", ans), ("idk", idk)):
                self._buffer[name][self._fill : self._fill + take] = values[done : done + take]
            self._ids.extend(ids[done : done + take])
            self._fill += take
            done += take
            if self._fill == self.shard_rows:
                self._flush()

    def _check_append(self, ids: Sequence[str], ans: torch.Tensor, idk: torch.Tensor) -> None:
        for name, values in (("ans", ans), ("idk", idk)):
            if tuple(values.shape) != (len(ids), self.d):
                raise FeatureStoreError(f"{name} has shape {tuple(values.shape)}, want d={self.d}")
            if not torch.isfinite(values).all():
                raise FeatureStoreError(f"{name} has non-finite values")
        for item_id in ids:
            if not isinstance(item_id, str) or item_id in self._seen:
                raise FeatureStoreError(f"item id {item_id!r} is not a new string id")
            self._seen.add(item_id)

    def close(self) -> dict[str, Any]:
        """Write the last partial shard, ``ids.json``, then the manifest; returns the manifest."""
        if self._fill:
            self._flush()
        self._closed = True
        atomic_write_json(self.directory / IDS, self._ids)
        info = {
            "d": self.d,
            "n": len(self._ids),
            "dtype": str(self.dtype).removeprefix("torch."),
            "shards": [{"name": s.name, "start": s.start, "rows": s.rows} for s in self._shards],
        }
        files = [IDS, *(s.name for s in self._shards)]
        return write_stage_manifest(self.directory, files, info)

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # On an error keep the complete shards on disk, so a resumed writer can skip them.
        if exc_type is None and not self._closed:
            self.close()

    def _flush(self) -> None:
        start = len(self._ids) - self._fill
        info = ShardInfo(shard_name(len(self._shards)), start, self._fill)
        tensors = {name: self._buffer[name][: self._fill].contiguous() for name in NAMES}
        # A single key: safetensors orders several keys arbitrarily (not byte-deterministic).
        metadata = {"shard": json.dumps({"start": start, "ids": self._ids[start:]})}
        atomic_write_bytes(self.directory / info.name, safetensors_bytes(tensors, metadata))
        self._shards.append(info)
        self._fill = 0

    def _adopt_shards(self) -> None:
        # Keep consecutive full shards; a partial last shard is rewritten with its rows.
        while (path := self.directory / shard_name(len(self._shards))).is_file():
            try:
                with safe_open(str(path), framework="pt") as handle:
                    meta = json.loads((handle.metadata() or {})["shard"])
                    shape = handle.get_slice("idk").get_shape()
                ids = meta["ids"]
            except Exception:  # an unreadable shard is treated as not written
                break
            if int(meta["start"]) != len(self._ids) or len(ids) != self.shard_rows:
                break
            if list(shape) != [self.shard_rows, self.d]:
                raise FeatureStoreError(f"{path.name} has shape {shape}, want d={self.d}")
            self._shards.append(ShardInfo(path.name, len(self._ids), self.shard_rows))
            self._ids.extend(ids)
        self._remove_shards(len(self._shards))

    def _remove_shards(self, first: int) -> None:
        for path in self.directory.glob("shard-*.safetensors"):
            index = path.name.removeprefix("shard-").removesuffix(".safetensors")
            if not index.isdigit() or int(index) >= first:
                path.unlink()
        (self.directory / IDS).unlink(missing_ok=True)


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
            _check_shard_header(root / shard.name, shard.rows, d)
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


def _check_shard_header(path: Path, rows: int, d: int) -> None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            headers = {name: handle.get_slice(name) for name in NAMES}
            shapes = {name: list(view.get_shape()) for name, view in headers.items()}
            dtypes = {name: view.get_dtype() for name, view in headers.items()}
    except Exception as error:  # missing file, bad header, missing tensor
        raise FeatureStoreError(f"{path.name}: unreadable shard ({error})") from error
    for name in NAMES:
        if shapes[name] != [rows, d] or dtypes[name] not in ("F32", "F16", "BF16"):
            raise FeatureStoreError(
                f"{path.name}: {name} is {dtypes[name]} {shapes[name]}, want {[rows, d]}"
            )


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
