"""What a job's child process computes on: torch threads, device and dtype (the settings).

``set_up_compute`` runs once in the child before the job's config is loaded
(``execute.execute_job``): it sets torch's thread count to ``settings.threads`` (the child's
OpenMP and MKL pools were sized in its environment by ``app.execution.supervise.start_child``,
before torch was imported), resolves ``GRAIT_DEVICE`` and ``GRAIT_DTYPE`` with the engine's
rules (``grait_engine.modeling.resolve_device`` and ``resolve_dtype``, the ones ``load_model``
uses), and for ``cuda:N`` makes GPU N torch's current device, so that code using "the
current CUDA device" (allocations without a device, memory queries, bitsandbytes) uses that
GPU: one worker per GPU is ``GRAIT_DEVICE=cuda:N grait worker``. Imports torch: the child
only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from app.settings import Settings


class ComputeError(Exception):
    """This worker cannot run the job as set (no such GPU, 4-bit without CUDA...): ``field``
    names the setting, ``message`` says what is wrong and what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Compute:
    """Where the job runs: ``device`` as the engine's ``ModelSpec`` takes it (``cpu``,
    ``cuda``, ``cuda:N``), ``dtype`` (``float32``, ``bfloat16``, ``float16``) and
    ``threads``, torch's intra-op thread count as torch reports it after setting it."""

    device: str
    dtype: str
    threads: int

    @property
    def device_type(self) -> str:
        """``cpu`` or ``cuda`` (what ``RuntimeConfig.batch_for`` takes)."""
        return self.device.partition(":")[0]


def set_up_compute(settings: Settings) -> Compute:
    """Set torch's threads (and the current GPU for ``cuda:N``); returns what the job uses.

    ``auto`` device: ``cuda`` when torch sees a GPU, else ``cpu``; ``auto`` dtype: bfloat16
    on a CUDA device that supports it, else float32 (the engine's rules). Raises
    ComputeError when the device names a GPU this process does not see. Side effects:
    ``torch.set_num_threads``, ``torch.cuda.set_device``.
    """
    import torch

    from grait_engine.model_files import ModelLoadError
    from grait_engine.modeling import resolve_device, resolve_dtype

    torch.set_num_threads(settings.threads)
    try:
        device = resolve_device(settings.device)
    except ModelLoadError:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        seen = f"GPUs 0-{count - 1}" if count else "no GPU"
        raise ComputeError(
            "GRAIT_DEVICE", f"{settings.device} requested, but this worker sees {seen}"
        ) from None
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device.index)
    dtype = resolve_dtype(settings.dtype, device)
    # "torch.bfloat16" -> "bfloat16": the name ModelSpec and RuntimeConfig take.
    dtype_name = str(dtype).removeprefix("torch.")
    return Compute(str(device), dtype_name, torch.get_num_threads())


def check_quantization(quantization: str | None, compute: Compute) -> None:
    """Raise ComputeError unless this worker can load a model with ``quantization``
    (``4bit`` needs a CUDA device and the bitsandbytes package; None always works)."""
    if quantization is None:
        return
    if compute.device_type != "cuda":
        raise ComputeError(
            "runtime.quantization",
            f"{quantization} needs a CUDA device, but this worker computes on {compute.device} "
            "(GRAIT_DEVICE); run the job on a GPU worker or set quantization to null",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ComputeError(
            "runtime.quantization",
            f"{quantization} needs the bitsandbytes package on the worker: "
            "pip install 'grait-service[gpu]' there, or set quantization to null",
        )
