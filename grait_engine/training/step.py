"""One optimiser step of the fine-tune and the checks around it (``stage.run_training``'s loop).

``TrainRun`` is the loop's working set (LoRA model, AdamW, warmup-cosine schedule, step
count, the epoch's permutation); ``setup_run`` makes a fresh seeded one; ``train_step`` takes
one optimiser step over its micro-batches (halving them after running out of memory);
``check_finite`` raises :class:`TrainingDiverged` when the loss or the weights become NaN or
infinite; ``report_step`` sends the step's progress and metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from peft import PeftModel

from grait_engine.errors import Diverged
from grait_engine.lora import attach_lora, lora_parameters
from grait_engine.memory import retry_halving
from grait_engine.stages import NoticeFn, StageCallbacks
from grait_engine.training.config import TrainingConfig
from grait_engine.training.loss import (
    epoch_order,
    lr_factor,
    step_rows,
    steps_per_epoch,
    warmup_steps,
    weighted_loss,
)

STAGE = "train"


class TrainingDiverged(Diverged):
    """A step's loss, or the LoRA weights after a step, became NaN or infinite. Nothing of
    that step is saved (no checkpoint, no adapter): the run would only produce NaNs."""


@dataclass
class TrainRun:
    """Mutable training state of one process (the loop's working set)."""

    model: PeftModel
    params: list[tuple[str, torch.nn.Parameter]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    total: int
    per_epoch: int
    step: int = 0
    loss: float | None = None
    orders: dict[int, list[int]] | None = None
    micro_batch: int = 1  # samples per forward/backward (config.batch_size until an OOM)
    # With dynamic weights (``reweight``): the weights in use and each recomputation's summary.
    weights: list[float] | None = None
    reweights: list[dict[str, float]] | None = None

    def order(self, n: int, seed: int, epoch: int) -> list[int]:
        """The permutation of ``epoch``, computed once per epoch."""
        if self.orders is None or epoch not in self.orders:
            self.orders = {epoch: epoch_order(n, seed, epoch)}
        return self.orders[epoch]


def setup_run(base_model: Any, config: TrainingConfig, n: int, seed: int) -> TrainRun:
    """Fresh seeded LoRA, AdamW and the warmup-cosine LambdaLR for ``n`` examples."""
    targets = list(config.target_modules) if config.target_modules else None
    model = attach_lora(
        base_model, config.lora_r, config.lora_alpha, config.lora_dropout, targets, seed
    )
    params = lora_parameters(model)
    optimizer = torch.optim.AdamW(
        [p for _, p in params],
        lr=config.lr,
        betas=config.adam_betas,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )
    per_epoch = steps_per_epoch(n, config.batch_size, config.grad_accum)
    total = per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = warmup_steps(total, config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total)
    )
    return TrainRun(
        model, params, optimizer, scheduler, total, per_epoch, micro_batch=config.batch_size
    )


def train_step(
    run: TrainRun,
    sequences: list[Any],
    weights: list[float],
    seed: int,
    config: TrainingConfig,
    pad_id: int,
    notice: NoticeFn | None,
) -> float:
    """One optimiser step (all its micro-batches); returns the step loss ``L_step``.

    A step that runs out of memory is redone from scratch with micro-batches of half the
    size (for the rest of the run): ``weighted_loss`` divides by the step's sample count, so
    the gradient is the same up to float rounding."""
    epoch, in_epoch = divmod(run.step, run.per_epoch)
    order = run.order(len(sequences), seed, epoch)
    rows = [
        i
        for batch in step_rows(order, in_epoch, config.batch_size, config.grad_accum)
        for i in batch
    ]

    def attempt(size: int) -> float:
        run.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            loss = weighted_loss(
                run.model,
                [sequences[i] for i in part],
                [weights[i] for i in part],
                len(rows),
                pad_id,
                config.target_loss,
            )
            torch.autograd.backward(loss)
            total += float(loss.detach())
        return total

    total, run.micro_batch = retry_halving(
        attempt, run.micro_batch, stage=STAGE, what="micro-batch size", notice=notice
    )
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for _, p in run.params], config.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return total


def check_finite(run: TrainRun, lr: float, *, weights_too: bool) -> None:
    """Raise TrainingDiverged when the step's loss (or, before anything is saved, a LoRA
    weight) is NaN or infinite: such a run must never end as a finished adapter."""
    bad = run.loss is not None and not math.isfinite(run.loss)
    if not bad and weights_too:
        bad = not all(bool(torch.isfinite(p).all()) for _, p in run.params)
    if bad:
        raise TrainingDiverged(
            f"training diverged at step {run.step} of {run.total} (loss {run.loss}, "
            f"learning rate {lr:.3g}): the loss or the weights became NaN or infinite; "
            "lower hyperparameters.lr or keep grad_clip > 0"
        )


def report_step(run: TrainRun, lr: float, callbacks: StageCallbacks) -> None:
    """Progress and metrics of the step just taken (``lr``: the rate it used)."""
    if callbacks.metric is not None:
        callbacks.metric("train/loss", run.step, float(run.loss or 0.0))
        callbacks.metric("train/lr", run.step, lr)
    if callbacks.progress is not None:
        message = f"step {run.step}/{run.total} loss {run.loss:.4f} lr {lr:.3g}"
        callbacks.progress(STAGE, run.step, run.total, message)
