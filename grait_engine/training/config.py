"""Knobs of the weighted LoRA fine-tune (METHOD.md stage 6), validated.

Torch-free, so the service can validate a job's hyperparameters before queueing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from grait_engine.errors import FieldError
from grait_engine.knobs import (
    ADAMW_KNOBS,
    LORA_KNOBS,
    TARGET_LOSSES,
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

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")


class TrainingConfigError(FieldError):
    """A training knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class TrainingConfig(KnobConfig):
    """How the final model is trained; defaults are the paper's (METHOD.md stage 6).

    LoRA: rank ``lora_r``, ``lora_alpha`` (scale alpha / r), ``lora_dropout`` on
    ``target_modules`` (None: ``lora.default_target_modules``). AdamW: ``lr``,
    ``weight_decay``, ``adam_betas``, ``adam_eps``; gradients clipped to norm ``grad_clip``
    (0 disables). ``target_loss``: how a sequence's target-token NLLs make its loss
    (``knobs.TARGET_LOSSES``; ``mean`` is the paper's; the features stage uses the same).
    Schedule: linear warmup over ``ceil(warmup_ratio * total_steps)`` steps, then
    cosine to 0. ``epochs`` passes over the examples in ``batch_size`` micro-batches,
    ``grad_accum`` micro-batches per optimiser step; ``max_steps`` caps the optimiser steps
    (the schedule then ends there). A checkpoint is written every ``checkpoint_every`` steps
    and the newest ``keep_checkpoints`` are kept.
    """

    error: ClassVar[type[FieldError]] = TrainingConfigError
    noun: ClassVar[str] = "setting"

    lora_r: int = knob(64, LORA_KNOBS["lora_r"])
    lora_alpha: float = knob(16.0, LORA_KNOBS["lora_alpha"])
    lora_dropout: float = knob(0.1, LORA_KNOBS["lora_dropout"])
    target_modules: tuple[str, ...] | None = knob(
        DEFAULT_TARGET_MODULES, LORA_KNOBS["target_modules"]
    )
    lr: float = knob(2e-4, ADAMW_KNOBS["lr"])
    weight_decay: float = knob(0.0, ADAMW_KNOBS["weight_decay"])
    adam_betas: tuple[float, float] = knob((0.9, 0.999), ADAMW_KNOBS["adam_betas"])
    adam_eps: float = knob(1e-8, ADAMW_KNOBS["adam_eps"])
    # 0 disables clipping; NaN would too, silently, so the check refuses it.
    grad_clip: float = knob(1.0, number(low=0))
    epochs: int = knob(3, integer(low=1))
    warmup_ratio: float = knob(0.03, number(low=0, below=1))
    batch_size: int = knob(8, integer(low=1))
    grad_accum: int = knob(1, integer(low=1))
    checkpoint_every: int = knob(50, integer(low=1))
    keep_checkpoints: int = knob(2, integer(low=1))
    max_steps: int | None = knob(None, integer(low=1, optional=True))
    target_loss: str = knob("mean", choice(TARGET_LOSSES))

    @property
    def lora(self) -> LoraSettings:
        """The LoRA knobs as a ``LoraSettings``."""
        return lora_of(self)

    @property
    def adamw(self) -> AdamWSettings:
        """The optimiser knobs as an ``AdamWSettings``."""
        return adamw_of(self)
