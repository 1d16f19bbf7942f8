"""Knobs of the weighted LoRA fine-tune (METHOD.md stage 6), validated.

Torch-free, so the service can validate a job's hyperparameters before queueing it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from grait_engine.errors import FieldError, reject_unknown_keys


class TrainingConfigError(FieldError):
    """A training knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class TrainingConfig:
    """How the final model is trained; defaults are the paper's (METHOD.md stage 6).

    LoRA: rank ``lora_r``, ``lora_alpha`` (scale alpha / r), ``lora_dropout`` on
    ``target_modules`` (None: ``lora.default_target_modules``). AdamW: ``lr``,
    ``weight_decay``, ``adam_betas``, ``adam_eps``; gradients clipped to norm ``grad_clip``
    (0 disables). Schedule: linear warmup over ``ceil(warmup_ratio * total_steps)`` steps, then
    cosine to 0. ``epochs`` passes over the examples in ``batch_size`` micro-batches,
    ``grad_accum`` micro-batches per optimiser step; ``max_steps`` caps the optimiser steps
    (the schedule then ends there). A checkpoint is written every ``checkpoint_every`` steps
    and the newest ``keep_checkpoints`` are kept.
    """

    lora_r: int = 64
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    target_modules: tuple[str, ...] | None = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 2e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    epochs: int = 3
    warmup_ratio: float = 0.03
    batch_size: int = 8
    grad_accum: int = 1
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    max_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("lora_r", "epochs", "batch_size", "grad_accum", "checkpoint_every"):
            _positive_int(name, getattr(self, name))
        _positive_int("keep_checkpoints", self.keep_checkpoints)
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        for name in ("lora_alpha", "lr", "adam_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise TrainingConfigError(name, f"must be a number > 0, got {value!r}")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise TrainingConfigError(name, f"must be a number >= 0, got {value!r}")
        for name in ("lora_alpha", "lr", "adam_eps", "weight_decay", "grad_clip"):
            # NaN passes the comparisons above (grad_clip NaN would turn clipping off).
            if not math.isfinite(getattr(self, name)):
                raise TrainingConfigError(name, f"must be finite, got {getattr(self, name)!r}")
        if not 0 <= self.lora_dropout < 1:
            raise TrainingConfigError("lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.warmup_ratio < 1:
            raise TrainingConfigError("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        betas = tuple(self.adam_betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise TrainingConfigError("adam_betas", f"two values in [0, 1), got {betas}")
        # Canonical types, so to_dict() and content hashes do not depend on list vs tuple.
        object.__setattr__(self, "adam_betas", (float(betas[0]), float(betas[1])))
        if self.target_modules is not None:
            modules = tuple(self.target_modules)
            if not modules or not all(isinstance(m, str) and m for m in modules):
                raise TrainingConfigError("target_modules", "must be non-empty names or null")
            object.__setattr__(self, "target_modules", modules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every knob (lists for tuples)."""
        out = asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        if self.target_modules is not None:
            out["target_modules"] = list(self.target_modules)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """A config from a (partial) dict; unknown keys raise TrainingConfigError."""
        # Lists (from YAML/JSON) become tuples in __post_init__.
        reject_unknown_keys(cls, data, TrainingConfigError, noun="setting")
        return cls(**data)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TrainingConfigError(name, f"must be an integer >= 1, got {value!r}")
