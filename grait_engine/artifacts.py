"""Atomic files, content hashes and stage manifests (ARCHITECTURE.md, "The engine").

Every stage output is written to a temporary file in the same directory, fsynced, then moved
into place with ``os.replace``, so a reader never sees half a file and a killed process leaves
either the old file or the new one. A stage directory is complete when its ``manifest.json``
exists and every file it lists has the recorded sha256.

Torch-free: the service may import this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (memory independent of size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: Any, length: int = 16) -> str:
    """A short, stable hash of a JSON-serialisable config (keys sorted)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(
    directory: str | os.PathLike[str], files: Iterable[str], info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Hash ``files`` (names relative to ``directory``) and write ``manifest.json`` last.

    Returns the manifest: ``{"files": {name: sha256}, **info}``.
    """
    root = Path(directory)
    manifest = {"files": {name: sha256_file(root / name) for name in sorted(files)}}
    manifest.update(info or {})
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def read_manifest(directory: str | os.PathLike[str], verify: bool = True) -> dict[str, Any] | None:
    """The manifest of a complete stage directory, or None if missing or inconsistent.

    With ``verify`` every listed file is re-hashed; a missing or changed file makes the
    directory incomplete (None), so the stage runs again.
    """
    root = Path(directory)
    try:
        manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    for name, digest in manifest.get("files", {}).items():
        path = root / name
        if not path.is_file() or (verify and sha256_file(path) != digest):
            return None
    return manifest
