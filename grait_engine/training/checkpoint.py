"""Training checkpoints: written atomically, found again after a crash (resume).

Layout of ``out_dir/checkpoints/``::

    step-000050/
        state.safetensors   LoRA weights ("lora.<name>"), AdamW moments and step counts
                            ("opt.<k>.exp_avg" ...; k = index in lora_parameters order) and
                            RNG states: "rng.cpu", and "rng.cuda" for the CUDA device the
                            run used (only that one), all as tensors
        state.json          step, epoch, step_in_epoch, inputs_hash, optimizer param_groups,
                            scheduler state, last loss
        manifest.json       sha256 of both files (written last)
    latest                  the name of the newest complete checkpoint (written after it)

A checkpoint directory is staged under a hidden name and renamed into place only once its
manifest is written, so a visible ``step-*`` directory is complete. No pickle is used.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from grait_engine.artifacts import atomic_write_text, read_manifest, write_manifest
from grait_engine.job_folder import CHECKPOINTS_DIR, checkpoint_name

CHECKPOINTS = CHECKPOINTS_DIR
LATEST = "latest"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: ``tensors`` (CPU) and the JSON ``state``."""

    path: Path
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def capture(
    params: list[tuple[str, torch.nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    device: torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """LoRA weights, AdamW state and RNG states as named CPU tensors.

    ``device``: where the run computes; a CUDA device adds that device's RNG state (only
    its own: a worker may see other GPUs than the one that resumes the run)."""
    tensors = {f"lora.{name}": p.detach().cpu().contiguous() for name, p in params}
    for k, (_, param) in enumerate(params):
        for key, value in optimizer.state.get(param, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{k}.{key}"] = value.detach().cpu().contiguous().clone()
    tensors["rng.cpu"] = torch.get_rng_state()
    if device is not None and device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors


def restore(
    checkpoint: Checkpoint,
    params: list[tuple[str, torch.nn.Parameter]],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device | None = None,
) -> None:
    """Put a checkpoint's weights, optimizer, scheduler and RNG states back in place.

    Works across device kinds: a checkpoint written on a GPU resumes on the CPU (its CUDA
    RNG state is not needed there) and one written on the CPU resumes on a GPU (whose RNG
    then keeps the seed the run set; only dropout masks differ from an uninterrupted run).
    Checkpoints of older versions, which saved every visible GPU's state, give their first.
    """
    tensors = checkpoint.tensors
    with torch.no_grad():
        for name, param in params:
            param.copy_(tensors[f"lora.{name}"].to(param.device, param.dtype))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, k, field = key.split(".", 2)
            state.setdefault(int(k), {})[field] = value
    groups = checkpoint.state["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(checkpoint.state["scheduler"])
    torch.set_rng_state(tensors["rng.cpu"])
    saved = tensors.get("rng.cuda")
    if saved is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(saved[0] if saved.ndim == 2 else saved, device)


def optimizer_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """The optimizer's param_groups without tensors (JSON-ready; params as indices)."""
    groups = optimizer.state_dict()["param_groups"]
    plain: list[dict[str, Any]] = json.loads(json.dumps(groups, default=lambda v: v.tolist()))
    return plain


def save_checkpoint(
    root: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any], keep: int
) -> Path:
    """Write ``root/checkpoints/step-XXXXXX`` atomically, point ``latest`` at it, prune.

    Output: the checkpoint directory. Only the newest ``keep`` checkpoints are kept.
    """
    base = root / CHECKPOINTS
    name = checkpoint_name(int(state["step"]))
    staging = base / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(tensors, str(staging / STATE_TENSORS))
    atomic_write_text(staging / STATE_JSON, json.dumps(state, indent=1) + "\n")
    write_manifest(staging, [STATE_TENSORS, STATE_JSON], {"step": state["step"]})
    final = base / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    atomic_write_text(base / LATEST, name + "\n")
    for old in sorted(p for p in base.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def clear_checkpoints(root: Path) -> None:
    """Remove ``root/checkpoints`` (stale checkpoints of other inputs, before a fresh run).

    Pruning keeps the newest step numbers, so a stale high-numbered checkpoint left in place
    would outlive the new run's own ones.
    """
    shutil.rmtree(root / CHECKPOINTS, ignore_errors=True)


def _candidates(base: Path) -> list[Path]:
    """Checkpoint dirs to try: the ``latest`` one first, then the others newest first."""
    found = sorted((p for p in base.glob("step-*") if p.is_dir()), reverse=True)
    try:
        pointed = base / (base / LATEST).read_text().strip()
    except OSError:
        return found
    return [pointed] + [p for p in found if p != pointed]


def load_latest(root: Path, inputs_hash: str) -> Checkpoint | None:
    """The newest complete checkpoint of ``root`` for ``inputs_hash``, or None.

    A checkpoint whose files do not match its manifest, or that belongs to other inputs, is
    skipped (never resumed from).
    """
    for path in _candidates(root / CHECKPOINTS):
        if read_manifest(path) is None:
            continue
        state = json.loads((path / STATE_JSON).read_text())
        if state.get("inputs_hash") != inputs_hash:
            continue
        return Checkpoint(path, load_file(str(path / STATE_TENSORS)), state)
    return None
