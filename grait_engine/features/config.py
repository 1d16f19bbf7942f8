"""Knobs of the gradient-features stage (METHOD.md stage 3), validated.

Torch-free, so the service can validate a job's settings before queueing it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from grait_engine.errors import FieldError, reject_unknown_keys


class FeaturesConfigError(FieldError):
    """A features knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class FeaturesConfig:
    """What the features stage computes; every knob here changes the features.

    Warmup (METHOD.md stage 3.1): a LoRA of rank ``lora_r`` / ``lora_alpha`` /
    ``lora_dropout`` trained with AdamW (``lr``, ``weight_decay``, ``adam_betas``,
    ``adam_eps``) for ``warmup_epochs`` over batches of ``warmup_batch_size`` on the items
    with correctness ``>= warmup_min_correct`` (at most ``warmup_max_items``, seeded
    sample). When none qualifies, the ``warmup_fallback_items`` most correct items are used
    instead (recorded in the warmup manifest).

    Features (3.2-3.4): preconditioning with ``adam_betas`` / ``precondition_eps``, a
    Rademacher projection to ``min(dim, #LoRA parameters)`` dimensions, row L2
    normalisation; ``projection_dtype``: ``bfloat16`` (bfloat16 products of the rows with
    the exact +-1 signs, float32 sums; feature cosines within about 1e-5 of the all-float32
    ones, see ``projection``), ``float32`` throughout, or ``auto`` (default: bfloat16 where
    it is faster, on CUDA devices with native bfloat16; float32 elsewhere; the resolved
    value is part of the stage key). Defaults are small-model friendly: rank 8 on the
    attention projections. Speed-only settings (batch sizes, shard size, memory budget)
    are arguments of ``run_features``, not knobs.
    """

    dim: int = 8192
    projection_dtype: str = "auto"
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None
    lr: float = 2e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    precondition_eps: float = 1e-8
    warmup_epochs: int = 1
    warmup_batch_size: int = 8
    warmup_min_correct: float = 0.99
    warmup_max_items: int = 1000
    warmup_fallback_items: int = 64

    def __post_init__(self) -> None:
        for name in ("dim", "lora_r", "warmup_epochs", "warmup_batch_size"):
            _positive_int(name, getattr(self, name))
        for name in ("warmup_max_items", "warmup_fallback_items"):
            _positive_int(name, getattr(self, name))
        for name in ("lora_alpha", "lr", "adam_eps", "precondition_eps"):
            if not getattr(self, name) > 0:
                raise FeaturesConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise FeaturesConfigError("lora_dropout", "must be in [0, 1)")
        if self.projection_dtype not in ("auto", "float32", "bfloat16"):
            raise FeaturesConfigError("projection_dtype", "must be auto, float32 or bfloat16")
        if self.weight_decay < 0:
            raise FeaturesConfigError("weight_decay", "must be >= 0")
        for name in ("lora_alpha", "lr", "adam_eps", "precondition_eps", "weight_decay"):
            # NaN and Infinity pass the comparisons above.
            if not math.isfinite(getattr(self, name)):
                raise FeaturesConfigError(name, f"must be finite, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_min_correct <= 1:
            raise FeaturesConfigError("warmup_min_correct", "must be in [0, 1]")
        b1, b2 = self.adam_betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise FeaturesConfigError("adam_betas", f"each must be in [0, 1), got {b1}, {b2}")
        # Canonical types, so to_dict() and the content hash do not depend on list vs tuple.
        object.__setattr__(self, "adam_betas", (float(b1), float(b2)))
        if self.target_modules is not None:
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeaturesConfig:
        """A config from a (partial) dict; unknown keys raise FeaturesConfigError.

        Lists (from YAML/JSON) become tuples in __post_init__."""
        reject_unknown_keys(cls, values, FeaturesConfigError)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every knob (hashed into the stage inputs)."""
        out = asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        if self.target_modules is not None:
            out["target_modules"] = list(self.target_modules)
        return out


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FeaturesConfigError(name, f"must be an integer >= 1, got {value!r}")
