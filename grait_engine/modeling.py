"""Loading base models and tokenizers (ARCHITECTURE.md); LoRA adapters are in ``lora.py``.

Rules that hold for every function here:

- Offline, always: a model comes from a local directory or from the local Hugging Face cache
  (``HF_HOME`` / ``HF_HUB_CACHE``, read through ``huggingface_hub.constants``). Nothing here
  opens a network connection, whatever ``HF_HUB_OFFLINE`` says; a model missing from the cache
  raises :class:`ModelNotFoundError` saying how to put it there.
- ``trust_remote_code=False``: code shipped with a model (``auto_map``) is never imported; a
  model whose architecture transformers does not know fails to load with a clear error.
- Safetensors only: pickle weights (``*.bin``, ``*.pt``) can execute code when loaded, so a
  directory without ``*.safetensors`` weights is refused (:class:`UnsafeWeightsError`).
- Tokenizers pad on the left (batched generation continues every row from its last token) and
  always have a pad token (the EOS token when the model has none: mask padding with the
  attention mask, never by token id).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
)
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DEVICE_RE = re.compile(r"cpu|auto|cuda(:\d+)?")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_REMOTE_CODE_NOTE = (
    "\nThis service never runs code shipped with a model (trust_remote_code=False): use a "
    "model whose architecture the installed transformers version implements."
)
_HASHED_FILE_LIMIT = 64 * 2**20  # non-weight files up to this size are hashed by content


class ModelLoadError(Exception):
    """A model, tokenizer or adapter could not be loaded; the message says which and why."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """Neither a local model directory nor a model in the local Hugging Face cache."""


class UnsafeWeightsError(ModelLoadError):
    """The model has no safetensors weights (only pickle files, which are refused)."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and where.

    ``name_or_path``: a local directory (with ``config.json`` and ``*.safetensors``) or a
    Hugging Face ID present in the local cache. ``device``: ``cpu``, ``cuda``, ``cuda:N`` or
    ``auto`` (CUDA when available, else CPU). ``dtype``: ``float32``, ``bfloat16``,
    ``float16`` or ``auto`` (bfloat16 on a CUDA device that supports it, else float32).
    ``revision``: branch, tag or commit of a Hugging Face ID; ignored for local directories.
    ``quantization``: None, or ``4bit`` (NF4 weights, ``dtype`` for the computation; QLoRA;
    CUDA and the bitsandbytes package, the ``gpu`` extra, only).
    """

    name_or_path: str
    device: str = "cpu"
    dtype: str = "float32"
    revision: str | None = None
    quantization: str | None = None

    def __post_init__(self) -> None:
        if not _DEVICE_RE.fullmatch(self.device):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto, not {self.device!r}")
        if self.dtype not in (*DTYPES, "auto"):
            raise ValueError(f"dtype must be one of {[*DTYPES, 'auto']}, not {self.dtype!r}")
        if self.quantization not in (None, "4bit"):
            raise ValueError(f"quantization must be null or 4bit, not {self.quantization!r}")


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk: its ``name`` as asked for, local ``path`` and ``revision``."""

    name: str
    path: Path
    revision: str


def resolve_device(device: str) -> torch.device:
    """``cpu``/``cuda``/``cuda:N``/``auto`` -> a torch device; ModelLoadError if CUDA is absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise ModelLoadError(f"device {device!r} requested but only {count} CUDA device(s)")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """A dtype name -> torch dtype; ``auto`` is bfloat16 on capable CUDA devices, else float32."""
    if dtype != "auto":
        return DTYPES[dtype]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


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


def resolve_model(spec: ModelSpec) -> ResolvedModel:
    """Find ``spec``'s model on disk and compute its revision, without loading any weights."""
    path = resolve_model_path(spec.name_or_path, spec.revision)
    return ResolvedModel(name=spec.name_or_path, path=path, revision=model_revision(path))


def _require_safetensors(name: str, path: Path) -> None:
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


def _tokenizer_from(name: str, path: Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer in ``path``; give it a pad token and left padding."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=False, local_files_only=True
        )
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"Could not load the tokenizer of {name!r} from {path}: {error}"
        ) from error
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"The tokenizer of {name!r} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding: in a batch, every prompt ends at the last position, where generation and
    # next-token probabilities are read.
    tokenizer.padding_side = "left"
    return tokenizer


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    """The tokenizer of ``spec``'s model, with a pad token (EOS if none) and ``padding_side="left"``.

    Raises ModelNotFoundError / ModelLoadError. Never touches the network.
    """
    path = resolve_model_path(spec.name_or_path, spec.revision)
    return _tokenizer_from(spec.name_or_path, path)


def _quantization_config(spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> object:
    """The transformers config for ``spec.quantization`` (4-bit NF4 with double quantization,
    computing in ``dtype``); ModelLoadError where it cannot run."""
    if device.type != "cuda":
        raise ModelLoadError(
            f"quantization {spec.quantization!r} needs a CUDA device, not {device}"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError(
            f"quantization {spec.quantization!r} needs the bitsandbytes package: "
            "pip install 'grait-service[gpu]' on the GPU worker"
        ) from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def load_model(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``spec``'s causal LM and tokenizer, offline, safetensors only, no remote code.

    Output: ``(model, tokenizer)``; the model is in eval mode on ``spec.device`` in
    ``spec.dtype``, with ``model.grait_revision`` set to :func:`model_revision` of its files
    and ``generation_config.pad_token_id`` set from the tokenizer when it had none; the
    tokenizer is as :func:`load_tokenizer` returns it. Raises ModelNotFoundError,
    UnsafeWeightsError or ModelLoadError (unknown architecture, broken files, no CUDA).
    """
    resolved = resolve_model(spec)
    _require_safetensors(spec.name_or_path, resolved.path)
    device = resolve_device(spec.device)
    tokenizer = _tokenizer_from(spec.name_or_path, resolved.path)
    dtype = resolve_dtype(spec.dtype, device)
    options: dict[str, object] = {}
    if device.type == "cuda":
        # Weights go straight from the files to the GPU (no CPU copy of the whole model).
        options["device_map"] = {"": device}
    if spec.quantization is not None:
        options["quantization_config"] = _quantization_config(spec, device, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(resolved.path),
            dtype=dtype,
            trust_remote_code=False,
            use_safetensors=True,
            local_files_only=True,
            **options,
        )
    except (OSError, ValueError) as error:
        note = _REMOTE_CODE_NOTE if "trust_remote_code" in str(error) else ""
        raise ModelLoadError(
            f"Could not load model {spec.name_or_path!r} from {resolved.path}: {error}{note}"
        ) from error
    if device.type != "cuda":
        model.to(device)
    model.eval()
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.grait_revision = resolved.revision
    return model, tokenizer
