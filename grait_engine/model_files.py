"""Finding a base model's files offline, and the errors of loading (ARCHITECTURE.md).

- ``resolve_model_path``: a local directory, or a snapshot in the local Hugging Face cache
  (``HF_HUB_CACHE``, read through ``huggingface_hub.constants`` at call time); never the
  network. A missing model raises :class:`ModelNotFoundError` saying where it looked and
  how to put the model there.
- ``model_revision``: a string that changes whenever the model's files change (content
  addressing of the stage cache).
- ``require_safetensors``: pickle weights (``*.bin``, ``*.pt``) can execute code when
  loaded, so a directory without ``*.safetensors`` weights is refused
  (:class:`UnsafeWeightsError`).

``modeling.py`` loads the model and tokenizer from what these find.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
)

_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HASHED_FILE_LIMIT = 64 * 2**20  # non-weight files up to this size are hashed by content


class ModelLoadError(Exception):
    """A model, tokenizer or adapter could not be loaded; the message says which and why."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """Neither a local model directory nor a model in the local Hugging Face cache."""


class UnsafeWeightsError(ModelLoadError):
    """The model has no safetensors weights (only pickle files, which are refused)."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk: its ``name`` as asked for, local ``path`` and ``revision``."""

    name: str
    path: Path
    revision: str


def _looks_like_path(name: str) -> bool:
    """True for names that can only be paths: a Hugging Face ID has at most one ``/``."""
    return (
        name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "")
    )


def _not_found(
    name: str, revision: str | None, cache: Path | None, reason: str
) -> ModelNotFoundError:
    """The error for a missing model; ``cache`` is None when ``name`` can only be a path."""
    at = f" at revision {revision!r}" if revision else ""
    local = Path(name).expanduser().absolute()
    if cache is None:
        where = f"Looked for the local directory {local}."
        fix = "pass an existing directory that holds config.json and *.safetensors weights."
    else:
        where = (
            f"Looked for a local directory {local} and for a snapshot in the Hugging Face cache "
            f"{cache / ('models--' + name.replace('/', '--'))} (the cache is HF_HUB_CACHE, "
            f"default $HF_HOME/hub). Models are never downloaded here."
        )
        fix = (
            f"run `hf download {name}` on a machine with network access and copy the cache "
            f"here (or point HF_HUB_CACHE at it), or pass a local directory that holds "
            f"config.json and *.safetensors weights."
        )
    return ModelNotFoundError(f"Model {name!r}{at} not found: {reason}. {where} To fix: {fix}")


def resolve_model_path(
    name_or_path: str, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Where the files of a model are, without any network access.

    Inputs: a local directory or a Hugging Face ID (``org/name``); for an ID, an optional
    ``revision`` (branch, tag or commit; default ``main``) and ``cache_dir`` (default
    huggingface_hub's ``HF_HUB_CACHE``, read at call time). Output: the directory holding
    ``config.json`` (for an ID, ``<cache>/models--org--name/snapshots/<commit>``).
    Raises ModelNotFoundError naming the model, the places looked at, and the fix.
    """
    cache = Path(cache_dir if cache_dir is not None else hf_constants.HF_HUB_CACHE)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        found = local
    elif local.exists() or _looks_like_path(name_or_path):
        reason = "not a directory" if local.exists() else "no such local directory"
        raise _not_found(name_or_path, revision, None, reason)
    else:
        try:
            found = Path(
                snapshot_download(
                    name_or_path, revision=revision, cache_dir=cache, local_files_only=True
                )
            )
        except HFValidationError as error:
            raise _not_found(name_or_path, revision, cache, f"not a valid ID ({error})") from None
        except (LocalEntryNotFoundError, OSError) as error:
            partial = isinstance(error, IncompleteSnapshotError)
            reason = "its cached snapshot is incomplete" if partial else "not in the local cache"
            raise _not_found(name_or_path, revision, cache, reason) from None
    if not (found / "config.json").is_file():
        where = None if found == local else cache
        raise _not_found(name_or_path, revision, where, f"{found} has no config.json")
    return found


def model_revision(path: str | Path) -> str:
    """A string that changes whenever the model at ``path`` changes (for content addressing).

    A Hugging Face cache snapshot (``.../models--org--name/snapshots/<commit>``) gives its
    40-hex commit hash. A local directory gives ``local-<sha256>`` over its top-level files:
    ``*.safetensors`` weights by name, size and mtime (hashing many GB of weights at every
    job start would be slow), every other file (config, tokenizer, chat template) by content.
    A copy made without preserving mtimes therefore gets a new revision: a cache miss, never a
    wrong reuse. Hidden files and subdirectories are ignored.
    """
    path = Path(path)
    if (
        _COMMIT_RE.fullmatch(path.name)
        and path.parent.name == "snapshots"
        and path.parent.parent.name.startswith("models--")
    ):
        return path.name
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.name.startswith(".") or not file.is_file():
            continue
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0".encode())
        if file.suffix == ".safetensors" or stat.st_size > _HASHED_FILE_LIMIT:
            digest.update(f"{stat.st_mtime_ns}\0".encode())
        else:
            digest.update(file.read_bytes())
    return f"local-{digest.hexdigest()}"


def require_safetensors(name: str, path: Path) -> None:
    """Raise UnsafeWeightsError unless ``path`` holds safetensors weights (adapters excluded)."""
    weights = [p for p in path.glob("*.safetensors") if not p.name.startswith("adapter_")]
    if weights:
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    found = f" (found {', '.join(pickles)})" if pickles else ""
    raise UnsafeWeightsError(
        f"Model {name!r} at {path} has no *.safetensors weights{found}. Pickle weights are "
        f"refused because loading them can run arbitrary code; convert the model to "
        f"safetensors on a trusted machine (save_pretrained writes safetensors) and retry."
    )
