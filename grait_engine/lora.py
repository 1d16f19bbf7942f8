"""LoRA adapters on a loaded base model: attach, inspect, save, load and merge (ARCHITECTURE.md).

The base model comes from :func:`grait_engine.modeling.load_model`; everything here works on
it through peft, with these rules:

- Targets: Llama-style attention projections (``LLAMA_ATTENTION``) when the model has them,
  else every linear layer except the output embedding (:func:`default_target_modules`).
- Only the LoRA matrices train: :func:`attach_lora` freezes the base weights, and
  ``lora_B`` starts at zero so a fresh adapter leaves the model's output unchanged.
- Stable order: :func:`lora_parameters` lists LoRA parameters in module order, the same for
  every load of the same architecture and targets, so flattened gradients line up across
  processes.
- Safetensors only, written atomically: an adapter directory holds exactly the
  ``ADAPTER_FILES`` (peft format); :func:`save_adapter` stages and ``os.replace``-s them in,
  and :func:`load_adapter` refuses a directory without both (pickle adapters included).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from grait_engine.model_files import ModelLoadError

LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def default_target_modules(model: torch.nn.Module) -> list[str]:
    """LoRA target module names: Llama-style attention projections, else every linear layer.

    Output: ``["q_proj", "k_proj", "v_proj", "o_proj"]`` when the model has all four; else the
    sorted distinct names of its ``nn.Linear`` / GPT-2 ``Conv1D`` layers, minus the output
    embedding (``lm_head``). Raises ValueError when there is none.
    """
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if leaves.issuperset(LLAMA_ATTENTION):
        return list(LLAMA_ATTENTION)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if get_head is not None else None
    head_names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if m is head}
    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | Conv1D) and name
    }
    targets = sorted(linear - head_names)
    if not targets:
        raise ValueError(f"no linear layers to put LoRA on in {type(model).__name__}")
    return targets


def attach_lora(
    model: PreTrainedModel,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: list[str] | None = None,
    seed: int | None = None,
) -> PeftModel:
    """Wrap ``model`` with a fresh LoRA adapter (peft, task type CAUSAL_LM, no bias training).

    Inputs: rank ``r``, ``alpha`` (scale ``alpha / r``), ``dropout`` on the adapter input,
    ``target_modules`` (default :func:`default_target_modules`), and ``seed`` for the
    initialisation of ``lora_A`` (``lora_B`` starts at zero, so the output is unchanged).
    Output: a ``PeftModel`` whose only trainable parameters are the LoRA matrices.
    Side effects: LoRA layers are injected into ``model`` in place and its own parameters
    are frozen; the global RNG is left as it was when ``seed`` is given.
    """
    targets = list(target_modules) if target_modules is not None else default_target_modules(model)
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        bias="none",
    )
    if seed is None:
        return get_peft_model(model, config)
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=cuda_devices(device)):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def cuda_devices(device: torch.device) -> list[int]:
    """The CUDA device index of ``device`` as a list (empty for the CPU): the only RNG that
    ``torch.random.fork_rng`` needs to save for work on ``device``."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def lora_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The LoRA parameters of ``model`` as ``(name, parameter)``, in module order.

    The order is that of ``named_parameters`` (layer by layer), the same for every load of the
    same architecture and targets, so flattened gradients line up across processes.
    Includes frozen LoRA parameters (an adapter loaded for inference).
    """
    return [
        (name, param)
        for name, param in model.named_parameters()
        if any(part.startswith("lora_") for part in name.split("."))
    ]


def cast_lora(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Store ``model``'s LoRA weights in ``dtype``, in place.

    peft keeps LoRA weights in float32 on a bfloat16 base (``autocast_adapter_dtype``), which
    the optimiser needs: a bfloat16 weight would lose most of each small AdamW update to
    rounding. Where no update follows (the features' gradient pass, evaluation), weights in
    the base model's dtype skip a float32 copy of every LoRA input: less memory and time,
    with outputs that differ by the rounding of the weights (about 3 significant digits).
    """
    for _, param in lora_parameters(model):
        if param.dtype != dtype:
            param.data = param.data.to(dtype)


def remove_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Take the LoRA layers out of a model that :func:`attach_lora` or :func:`load_adapter`
    wrapped, without merging them; returns the plain base model (the same object the adapter
    was attached to), as it was before."""
    if isinstance(model, PeftModel):
        base: torch.nn.Module = model.unload()
        return base
    return model


def count_lora_parameters(model: torch.nn.Module) -> int:
    """The number of scalar LoRA parameters in ``model``."""
    return sum(param.numel() for _, param in lora_parameters(model))


def save_adapter(model: PeftModel, directory: str | Path) -> Path:
    """Write the LoRA adapter of ``model`` to ``directory`` in peft format (safetensors).

    Output: ``directory`` holding ``adapter_config.json`` and ``adapter_model.safetensors``.
    Files are written to a temporary sibling directory, fsynced, then moved in with
    ``os.replace``, so a reader never sees a half-written file. Overwrites existing files.
    """
    if not isinstance(model, PeftModel):
        raise TypeError(f"save_adapter needs a PeftModel, got {type(model).__name__}")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        model.save_pretrained(str(staging), safe_serialization=True)
        directory.mkdir(exist_ok=True)
        for file in sorted(staging.iterdir()):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(file, directory / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def load_adapter(
    model: PreTrainedModel, directory: str | Path, trainable: bool = False
) -> PeftModel:
    """Put the adapter saved by :func:`save_adapter` in ``directory`` on the base ``model``.

    Output: a ``PeftModel`` (eval mode and frozen unless ``trainable``). Side effect: LoRA
    layers are injected into ``model`` in place. Raises ModelLoadError when the directory does
    not hold both adapter files (pickle adapters are refused), TypeError for a PeftModel.
    """
    if isinstance(model, PeftModel):
        raise TypeError("load_adapter needs the base model, not a model that has an adapter")
    directory = Path(directory)
    missing = [name for name in ADAPTER_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelLoadError(f"No LoRA adapter in {directory}: missing {', '.join(missing)}")
    return PeftModel.from_pretrained(model, str(directory), is_trainable=trainable)


def merge_adapter(model: PeftModel) -> PreTrainedModel:
    """Fold the LoRA weights into the base weights and return the plain base model.

    Side effect: the base model's weights are changed in place and its LoRA layers removed;
    ``model`` should not be used afterwards.
    """
    if not isinstance(model, PeftModel):
        raise TypeError(f"merge_adapter needs a PeftModel, got {type(model).__name__}")
    return model.merge_and_unload()
