"""How a job runs on its machine: batch sizes, memory budget, TF32, 4-bit loading.

These settings never change what a job computes beyond float rounding (``quantization``
aside, which changes the model and is part of every stage key), so they are not hashed
into the stage outputs: a job may set them, a worker may set defaults for its machine
(``GRAIT_BATCH_SIZE``, ``GRAIT_MEMORY_BUDGET_MB``), and the job's own values win.

Torch-free, so the service can validate a job's ``runtime`` section before queueing it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from grait_engine.errors import FieldError, reject_unknown_keys

# Forward passes per batch when nothing sets it: CPUs gain little from larger batches, and
# on GPUs a batch that does not fit halves itself (grait_engine.memory).
DEFAULT_BATCH_SIZE = {"cpu": 8, "cuda": 16}
MAX_BATCH_SIZE = 1024
QUANTIZATIONS = ("4bit",)


class RuntimeConfigError(FieldError):
    """A runtime setting with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class RuntimeConfig:
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

    batch_size: int | None = None
    memory_budget_mb: int | None = None
    tf32: bool = True
    quantization: str | None = None

    def __post_init__(self) -> None:
        for name, top in (("batch_size", MAX_BATCH_SIZE), ("memory_budget_mb", 2**24)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise RuntimeConfigError(name, f"must be an integer in [1, {top}] or null")
        if not isinstance(self.tf32, bool):
            raise RuntimeConfigError("tf32", "must be true or false")
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise RuntimeConfigError("quantization", f"must be one of {QUANTIZATIONS} or null")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RuntimeConfig:
        """A config from a (partial) dict; unknown keys raise RuntimeConfigError."""
        reject_unknown_keys(cls, values, RuntimeConfigError, noun="setting")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
