"""The on-disk format of gradient features (METHOD.md stage 3, output): its names, its error
and the shard-header check shared by the writer (``features_writer``) and the reader
(``features_store``).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

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


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def check_shard_header(path: Path, rows: int, d: int) -> None:
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
