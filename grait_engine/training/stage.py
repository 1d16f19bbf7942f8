"""The weighted LoRA fine-tune stage (METHOD.md stage 6): train, checkpoint, resume, save.

``run_training`` attaches a fresh LoRA (seeded) to the base model, then runs AdamW over the
examples: per epoch a seeded permutation (``loss.epoch_order``), cut into optimiser steps of
``batch_size * grad_accum`` samples, no packing. Every ``checkpoint_every`` steps, and
before raising :class:`TrainingCancelled`, a checkpoint is written (``checkpoint``). Started
again with the same inputs, it restores the newest complete checkpoint (weights, AdamW state,
schedule, RNG) and regenerates the epoch permutation, skipping the steps already done, so the
final adapter equals that of an uninterrupted run (bitwise on the same device and threads).
This module holds the loop, the resume and the saved results; one optimiser step, the run
state and the divergence check are ``step``, the checkpoint files ``checkpoint``.

Output directory::

    checkpoints/...        see ``checkpoint``
    adapter/               the final adapter in peft format (``lora.save_adapter``)
    merged/                the merged model (safetensors), only with ``merge=True``
    manifest.json          written last: files, inputs_hash, steps, final loss
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grait_engine.artifacts import config_hash, read_manifest, write_manifest
from grait_engine.features.sequences import encode
from grait_engine.job_folder import ADAPTER_DIR, MERGED_DIR
from grait_engine.lora import ADAPTER_FILES, cuda_devices, merge_adapter, save_adapter
from grait_engine.probe.batching import pad_token_id
from grait_engine.stages import StageCallbacks, StageCancelled
from grait_engine.training import checkpoint as ckpt
from grait_engine.training.config import TrainingConfig
from grait_engine.training.loss import Example
from grait_engine.training.reweight import Reweighting, dynamic_weights, refusal_features
from grait_engine.training.step import (
    STAGE,
    TrainRun,
    check_finite,
    report_step,
    setup_run,
    train_step,
)


class TrainingCancelled(StageCancelled):
    """The cancel callback asked to stop; a checkpoint of the last finished step was written."""


@dataclass(frozen=True)
class TrainingResult:
    """A finished fine-tune: ``model`` (the PeftModel in eval mode; the merged plain model
    when trained with ``merge=True``), ``adapter_dir``, ``steps``
    (optimiser steps in total), ``resumed_from`` (step of the checkpoint restored, or None),
    ``final_loss`` (loss of the last step), the stage ``inputs_hash`` and ``skipped`` when
    a finished result for the same inputs was reused (``stages.StageResult``)."""

    model: Any
    directory: Path
    adapter_dir: Path
    steps: int
    resumed_from: int | None
    final_loss: float | None
    inputs_hash: str
    skipped: bool


def training_inputs_hash(
    config: TrainingConfig,
    examples: Sequence[Example],
    seed: int,
    model_revision: str,
    reweighting: Reweighting | None = None,
) -> str:
    """Content hash of everything that determines the trained adapter (32 hex chars)."""
    data = [[e.item.to_json(), e.refuse, e.weight] for e in examples]
    inputs: list[object] = [config.to_dict(), seed, model_revision, config_hash(data, 32)]
    if reweighting is not None:  # absent for fixed weights: their hashes stay as they were
        inputs.append(reweighting.to_dict())
    return config_hash(inputs, 32)


def _save(run: TrainRun, root: Path, config: TrainingConfig, inputs_hash: str) -> Path:
    """Checkpoint the state after ``run.step`` steps (with the weights in use when they
    are recomputed during the run)."""
    epoch, in_epoch = divmod(run.step, run.per_epoch)
    state = {
        "step": run.step,
        "epoch": epoch,
        "step_in_epoch": in_epoch,
        "total_steps": run.total,
        "inputs_hash": inputs_hash,
        "loss": run.loss,
        "param_groups": ckpt.optimizer_groups(run.optimizer),
        "scheduler": run.scheduler.state_dict(),
    }
    if run.reweights is not None:
        state |= {"weights": run.weights, "reweights": run.reweights}
    tensors = ckpt.capture(run.params, run.optimizer, run.params[0][1].device)
    return ckpt.save_checkpoint(root, tensors, state, config.keep_checkpoints)


def _finish(
    run: TrainRun, root: Path, inputs_hash: str, resumed: int | None, merge: bool, tokenizer: Any
) -> TrainingResult:
    """Save the final adapter (and the merged model with its tokenizer), then the manifest."""
    run.model.eval()
    save_adapter(run.model, root / ADAPTER_DIR)
    files = [f"{ADAPTER_DIR}/{name}" for name in ADAPTER_FILES]
    info = {"inputs_hash": inputs_hash, "steps": run.step, "final_loss": run.loss}
    info["merged"] = merge
    if run.reweights is not None:
        info["reweights"] = run.reweights
    model: Any = run.model
    if merge:
        # The merge folds LoRA into the base weights in place: the adapter is saved first.
        model = merge_adapter(run.model)
        model.save_pretrained(str(root / MERGED_DIR), safe_serialization=True)
        tokenizer.save_pretrained(str(root / MERGED_DIR))  # a directory load_model accepts
        files += [
            str(p.relative_to(root)) for p in sorted((root / MERGED_DIR).iterdir()) if p.is_file()
        ]
    write_manifest(root, files, info)
    return TrainingResult(
        model, root, root / ADAPTER_DIR, run.step, resumed, run.loss, inputs_hash, False
    )


def _reuse(base_model: Any, root: Path, inputs_hash: str, merge: bool) -> TrainingResult | None:
    """The finished result in ``root`` for ``inputs_hash`` (adapter loaded), or None.

    A result trained without ``merge`` is not reused when a merge is asked for.
    """
    manifest = read_manifest(root)
    if manifest is None or manifest.get("inputs_hash") != inputs_hash:
        return None
    if merge and not manifest.get("merged"):
        return None
    from grait_engine.lora import load_adapter

    model = load_adapter(base_model, root / ADAPTER_DIR)
    steps, loss = int(manifest["steps"]), manifest.get("final_loss")
    return TrainingResult(model, root, root / ADAPTER_DIR, steps, None, loss, inputs_hash, True)


def run_training(
    base_model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    config: TrainingConfig,
    out_dir: str | os.PathLike[str],
    *,
    seed: int,
    model_revision: str = "",
    merge: bool = False,
    callbacks: StageCallbacks | None = None,
    reweighting: Reweighting | None = None,
) -> TrainingResult:
    """Fine-tune a fresh LoRA on ``base_model`` over ``examples``; resume or reuse if possible.

    Inputs: the base model (LoRA is injected in place) and tokenizer, the weighted examples,
    the config, the stage directory and ``seed`` (LoRA init, epoch order, dropout);
    ``model_revision`` goes into the inputs hash. ``callbacks`` run after every optimiser
    step: ``progress("train", step, total, "loss .. lr ..")`` and ``metric(name, step,
    value)`` for ``train/loss`` and ``train/lr``; ``cancel()`` is checked before every step;
    ``notice(stage, message)`` hears about micro-batches halved after running out of memory.
    ``reweighting``: recompute the refusal examples' weights from the adapter being trained
    (``reweight``) when ``reweighting.due``; the examples' own weights are the start. Each
    recomputation is reported as progress and as ``train/weight_max`` / ``train/weight_min``
    metrics, recorded in the checkpoints (a resumed run continues with the weights in use)
    and listed under ``reweights`` in the manifest.
    Output: :class:`TrainingResult` (when a finished result is reused, its model is the base
    with the saved adapter loaded). With ``merge``, ``merged/`` is a loadable model directory
    (weights and tokenizer). Raises TrainingCancelled (after a checkpoint), and
    TrainingDiverged when the loss or the weights become NaN or infinite (nothing saved).
    Side effects: the files listed in the module doc; the global RNG is left as it was.
    """
    if not examples:
        raise ValueError("no training examples")
    callbacks = callbacks or StageCallbacks()
    root = Path(out_dir)
    inputs_hash = training_inputs_hash(config, examples, seed, model_revision, reweighting)
    reused = _reuse(base_model, root, inputs_hash, merge)
    if reused is not None:
        return reused
    sequences = [encode(e.item, e.refuse, tokenizer) for e in examples]
    weights = [e.weight for e in examples]
    pad_id = pad_token_id(tokenizer)
    device = next(base_model.parameters()).device
    with torch.random.fork_rng(devices=cuda_devices(device)):
        torch.manual_seed(seed)
        run = setup_run(base_model, config, len(examples), seed)
        if reweighting is not None:
            run.weights, run.reweights = list(weights), []
        found = ckpt.load_latest(root, inputs_hash)
        if found is not None:
            ckpt.restore(found, run.params, run.optimizer, run.scheduler, device)
            run.step, run.loss = found.step, found.state.get("loss")
            if reweighting is not None:
                run.weights = [float(w) for w in found.state["weights"]]
                run.reweights = list(found.state["reweights"])
        else:
            ckpt.clear_checkpoints(root)
        saved_at = run.step
        run.model.train()
        while run.step < run.total:
            if callbacks.cancelled():
                if saved_at != run.step:
                    _save(run, root, config, inputs_hash)
                raise TrainingCancelled(f"training cancelled at step {run.step} of {run.total}")
            if reweighting is not None and reweighting.due(run.step, run.per_epoch, run.total):
                _reweight(run, tokenizer, examples, config, reweighting, callbacks)
            lr = float(run.scheduler.get_last_lr()[0])
            step_weights = run.weights if run.weights is not None else weights
            run.loss = train_step(
                run, sequences, step_weights, seed, config, pad_id, callbacks.notice
            )
            at_save = run.step % config.checkpoint_every == 0 or run.step == run.total
            check_finite(run, lr, weights_too=at_save)
            report_step(run, lr, callbacks)
            if at_save:
                _save(run, root, config, inputs_hash)
                saved_at = run.step
    return _finish(run, root, inputs_hash, found.step if found else None, merge, tokenizer)


def _reweight(
    run: TrainRun,
    tokenizer: Any,
    examples: Sequence[Example],
    config: TrainingConfig,
    reweighting: Reweighting,
    callbacks: StageCallbacks,
) -> None:
    """Recompute ``run.weights`` from the current adapter (``reweight``) before step
    ``run.step``; report it and append its summary to ``run.reweights``."""
    if callbacks.progress is not None:
        n_idk = sum(1 for e in examples if e.refuse)
        message = f"step {run.step}/{run.total}: recomputing the weights of {n_idk} refusals"
        callbacks.progress(STAGE, run.step, run.total, message)
    features = refusal_features(
        run.model,
        tokenizer,
        examples,
        run.optimizer,
        config.adam_betas,
        reweighting,
        config.target_loss,
        run.micro_batch,
    )
    run.weights, summary = dynamic_weights(features, [e.refuse for e in examples], reweighting)
    assert run.reweights is not None
    run.reweights.append({"step": run.step, **summary})
    if callbacks.metric is not None:
        callbacks.metric("train/weight_max", run.step, summary["weight_max"])
        callbacks.metric("train/weight_min", run.step, summary["weight_min"])
