"""Knobs of the gradient-features stage (METHOD.md stage 3), validated.

Torch-free, so the service can validate a job's settings before queueing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from grait_engine.errors import FieldError
from grait_engine.knobs import (
    ADAMW_KNOBS,
    LORA_KNOBS,
    AdamWSettings,
    KnobConfig,
    LoraSettings,
    adamw_of,
    choice,
    integer,
    knob,
    lora_of,
    number,
)

# How the answer side of the features is preconditioned (``FeaturesConfig.answer_gradient``).
ANSWER_GRADIENTS = ("adam", "gradient", "rms")


class FeaturesConfigError(FieldError):
    """A features knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class FeaturesConfig(KnobConfig):
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
    value is part of the stage key). ``answer_gradient``: the answer side's rows (``F_ans``)
    are Adam-preconditioned like the refusal side's (``adam``, the paper's), the plain
    gradient (``gradient``, LESS's target side) or ``g / sqrt(v')`` (``rms``: Adam's step
    without the warmup momentum, which otherwise dominates a known item's row).
    ``checkpoints``: features from the warmup states at the end of each of its last
    ``checkpoints`` epochs (LESS's multi-checkpoint influence; at most ``warmup_epochs``):
    a row is the concatenation, oldest first, of each checkpoint's unit row scaled by
    ``sqrt(w_k)``, ``w_k`` the epoch's learning rate over their sum (``1 / checkpoints`` at
    the warmup's constant rate), so rows stay unit length, their dimension is
    ``checkpoints * d`` and an inner product is ``sum_k w_k cos_k``. 1 (default): the paper's
    one final state.
    Defaults are small-model friendly: rank 8 on the
    attention projections. Speed-only settings (batch sizes, shard size, memory budget)
    are arguments of ``run_features``, not knobs.
    """

    error: ClassVar[type[FieldError]] = FeaturesConfigError

    dim: int = knob(8192, integer(low=1))
    projection_dtype: str = knob("auto", choice(("auto", "float32", "bfloat16")))
    lora_r: int = knob(8, LORA_KNOBS["lora_r"])
    lora_alpha: float = knob(16.0, LORA_KNOBS["lora_alpha"])
    lora_dropout: float = knob(0.1, LORA_KNOBS["lora_dropout"])
    target_modules: tuple[str, ...] | None = knob(None, LORA_KNOBS["target_modules"])
    lr: float = knob(2e-4, ADAMW_KNOBS["lr"])
    weight_decay: float = knob(0.0, ADAMW_KNOBS["weight_decay"])
    adam_betas: tuple[float, float] = knob((0.9, 0.999), ADAMW_KNOBS["adam_betas"])
    adam_eps: float = knob(1e-8, ADAMW_KNOBS["adam_eps"])
    precondition_eps: float = knob(1e-8, number(above=0))
    warmup_epochs: int = knob(1, integer(low=1))
    warmup_batch_size: int = knob(8, integer(low=1))
    warmup_min_correct: float = knob(0.99, number(low=0, high=1))
    warmup_max_items: int = knob(1000, integer(low=1))
    warmup_fallback_items: int = knob(64, integer(low=1))
    answer_gradient: str = knob("adam", choice(ANSWER_GRADIENTS))
    checkpoints: int = knob(1, integer(low=1))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.checkpoints > self.warmup_epochs:
            raise self.error(
                "checkpoints",
                f"must be at most warmup_epochs ({self.warmup_epochs}): one checkpoint per "
                f"warmup epoch, got {self.checkpoints}",
            )

    @property
    def lora(self) -> LoraSettings:
        """The warmup LoRA's knobs as a ``LoraSettings``."""
        return lora_of(self)

    @property
    def adamw(self) -> AdamWSettings:
        """The warmup optimiser's knobs as an ``AdamWSettings``."""
        return adamw_of(self)
