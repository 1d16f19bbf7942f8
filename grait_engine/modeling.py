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

Finding a model's files (local directory or cache snapshot), its revision and the
safetensors check are in ``model_files.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from grait_engine.model_files import (
    ModelLoadError,
    ResolvedModel,
    model_revision,
    require_safetensors,
    resolve_model_path,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DEVICE_RE = re.compile(r"cpu|auto|cuda(:\d+)?")
_REMOTE_CODE_NOTE = (
    "\nThis service never runs code shipped with a model (trust_remote_code=False): use a "
    "model whose architecture the installed transformers version implements."
)


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


def resolve_model(spec: ModelSpec) -> ResolvedModel:
    """Find ``spec``'s model on disk and compute its revision, without loading any weights."""
    path = resolve_model_path(spec.name_or_path, spec.revision)
    return ResolvedModel(name=spec.name_or_path, path=path, revision=model_revision(path))


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
    require_safetensors(spec.name_or_path, resolved.path)
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
