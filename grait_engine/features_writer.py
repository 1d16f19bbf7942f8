"""``FeatureWriter``: appends gradient-feature rows to a feature directory in fixed-size
shards, then writes ``ids.json`` and the manifest (the format: ``features_format``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from grait_engine.artifacts import MANIFEST, atomic_write_bytes, atomic_write_json
from grait_engine.artifacts import write_manifest as write_stage_manifest
from grait_engine.features_format import (
    IDS,
    NAMES,
    STORAGE_DTYPES,
    FeatureStoreError,
    ShardInfo,
    shard_name,
)


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
