"""How a job runs on its machine: batch sizes, memory budget, TF32, 4-bit loading.

These settings never change what a job computes beyond float rounding (``quantization``
aside, which changes the model and is part of every stage key), so they are not hashed
into the stage outputs: a job may set them, a worker may set defaults for its machine
(``GRAIT_BATCH_SIZE``, ``GRAIT_MEMORY_BUDGET_MB``), and the job's own values win.

Torch-free, so the service can validate a job's ``runtime`` section before queueing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from grait_engine.errors import FieldError
from grait_engine.knobs import KnobConfig, boolean, choice, integer, knob

# Forward passes per batch when nothing sets it: CPUs gain little from larger batches, and
# on GPUs a batch that does not fit halves itself (grait_engine.memory).
DEFAULT_BATCH_SIZE = {"cpu": 8, "cuda": 16}
MAX_BATCH_SIZE = 1024
QUANTIZATIONS = ("4bit",)


class RuntimeConfigError(FieldError):
    """A runtime setting with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class RuntimeConfig(KnobConfig):
    """A job's runtime settings; None means "the worker's default, else automatic".

    ``batch_size``: sequences per forward pass in the probe, features and evaluation (auto:
    8 on CPUs, 16 on CUDA; any batch that runs out of memory is halved). The training
    batch is the hyperparameter ``training.batch_size``, split into smaller micro-batches
    only after an out-of-memory error. ``memory_budget_mb``: what the features' gradient
    buffer may fill (auto: half the free device memory). ``tf32``: TensorFloat-32 for
    float32 matrix products on CUDA (faster, about 3 fewer significant digits; no effect
    on CPUs or in bfloat16). ``quantization``: ``4bit`` loads the base model in 4-bit NF4
    (QLoRA; CUDA with the ``gpu`` extra only).
    """

    error: ClassVar[type[FieldError]] = RuntimeConfigError
    noun: ClassVar[str] = "setting"

    batch_size: int | None = knob(None, integer(low=1, high=MAX_BATCH_SIZE, optional=True))
    memory_budget_mb: int | None = knob(None, integer(low=1, high=2**24, optional=True))
    tf32: bool = knob(True, boolean)
    quantization: str | None = knob(None, choice(QUANTIZATIONS, optional=True))

    def with_defaults(self, batch_size: int | None, memory_budget_mb: int | None) -> RuntimeConfig:
        """These settings with a worker's defaults filled in where the job left None."""
        return RuntimeConfig(
            self.batch_size if self.batch_size is not None else batch_size,
            self.memory_budget_mb if self.memory_budget_mb is not None else memory_budget_mb,
            self.tf32,
            self.quantization,
        )

    def batch_for(self, device_type: str) -> int:
        """The batch size to start with on a device of this type (``cpu``, ``cuda``)."""
        if self.batch_size is not None:
            return self.batch_size
        return DEFAULT_BATCH_SIZE.get(device_type, DEFAULT_BATCH_SIZE["cpu"])
