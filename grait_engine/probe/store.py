"""The probe's files: result shards, the resume checkpoint, and reading results back.

Layout of a probe directory::

    probe-00000.jsonl   one JSON object per item, in pool order (shard s holds items
    probe-00001.jsonl   s * shard_size ...); written atomically when the shard is complete
    checkpoint.json     {"inputs_hash", "shard_size", "shards": {name: sha256}} while running
    manifest.json       written last: every shard with its sha256, plus the run's info

Torch-free: the service and the split may read probe results without the model stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from grait_engine.artifacts import (
    atomic_write_json,
    atomic_write_text,
    read_manifest,
    sha256_file,
)

CHECKPOINT = "checkpoint.json"
SHARD_PATTERN = "probe-{:05d}.jsonl"


class ProbeIncompleteError(RuntimeError):
    """A probe directory without a complete, consistent manifest (not run or interrupted)."""


def shard_name(index: int) -> str:
    return SHARD_PATTERN.format(index)


def write_shard(directory: Path, index: int, records: list[dict[str, Any]]) -> str:
    """Write one shard atomically; returns its sha256."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(directory / shard_name(index), text)
    return sha256_file(directory / shard_name(index))


def read_shard(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_checkpoint(directory: Path, inputs_hash: str, shard_size: int) -> dict[str, str]:
    """Finished shards of an interrupted run with the same inputs and layout: {name: sha256}.

    A shard counts only if its file still has the recorded hash; anything else (no
    checkpoint, other inputs or shard size, a changed file) is recomputed.
    """
    try:
        state = json.loads((directory / CHECKPOINT).read_text())
    except (OSError, ValueError):
        return {}
    if state.get("inputs_hash") != inputs_hash or state.get("shard_size") != shard_size:
        return {}
    return {
        name: digest
        for name, digest in state.get("shards", {}).items()
        if (directory / name).is_file() and sha256_file(directory / name) == digest
    }


def save_checkpoint(
    directory: Path, inputs_hash: str, shard_size: int, shards: dict[str, str]
) -> None:
    atomic_write_json(
        directory / CHECKPOINT,
        {
            "inputs_hash": inputs_hash,
            "shard_size": shard_size,
            "shards": dict(sorted(shards.items())),
        },
    )


def clear_stale(directory: Path) -> None:
    """Remove the manifest, checkpoint and shards of another run before starting afresh."""
    for path in directory.glob("probe-*.jsonl"):
        path.unlink()
    for name in ("manifest.json", CHECKPOINT):
        (directory / name).unlink(missing_ok=True)


def read_probe(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and every record of a complete probe directory, in pool order.

    Every shard is re-hashed against the manifest; raises ProbeIncompleteError otherwise.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    if manifest is None or manifest.get("stage") != "probe":
        raise ProbeIncompleteError(f"{root} holds no complete probe (missing or changed files)")
    records: list[dict[str, Any]] = []
    for name in sorted(manifest["files"]):
        records.extend(read_shard(root / name))
    return manifest, records
