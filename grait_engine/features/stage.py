"""The features stage (METHOD.md stage 3): items -> ``F_ans``, ``F_idk`` in shards, resumable.

Layout of ``out_dir``:

- ``inputs.json``: the inputs hash of the run that owns the directory (a different hash
  wipes ``warmup/``, ``features/`` and ``plan.json`` first);
- ``plan.json``: the group size the first run chose, which a resumed run keeps;
- ``warmup/``: adapter, moments, manifest (see ``warmup``); reused on a restart;
- ``features/``: a ``FeatureWriter`` directory (``features_store``) with both ``ans`` and
  ``idk`` rows, ids in pool order (``checkpoints * d`` wide: ``checkpoint_features``);
- ``manifest.json``: written last; a complete directory for the same inputs is skipped.

Items are processed in shards of ``shard_rows`` (the writer's shard size), each cut into
groups of ``group_items`` whose gradients are projected together. ``group_items`` comes from
a memory budget (``SpeedSettings``): the (2 * group_items, D) gradient buffer fills a share
of the memory free after the warmup, so one group per shard on small models and as many
rows per pass over ``P`` as fit on large ones; the size is recorded in ``plan.json``. A
restart keeps the complete shards (``FeatureWriter(resume=True)``), recomputes from the first
missing one with the recorded group size, and groups never straddle shards, so a resumed run
computes the same groups and writes byte-identical shards on the same kind of device.
Memory: the gradient buffer, one batch's activations, one shard buffer; independent of the
number of items. The model is the caller's: the warmup adapter is attached to it for the stage and
removed before returning, so a job holds one copy of the model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from grait_engine.artifacts import atomic_write_json, config_hash, read_manifest, write_manifest
from grait_engine.features.compute import FeatureContext, batched_features
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.pergrad import LoraLayout, lora_layout
from grait_engine.features.projection import Projector, resolve_projection_dtype
from grait_engine.features.warmup import Warmup, WarmupState, load_lora_weights, run_warmup
from grait_engine.features_writer import FeatureWriter
from grait_engine.lora import cast_lora, remove_lora
from grait_engine.memory import Batching, budget_bytes, retry_halving
from grait_engine.records.item import Item
from grait_engine.stages import NoticeFn, StageCallbacks, StageCancelled, StageTracker

STAGE = "features"
INPUTS = "inputs.json"
PLAN = "plan.json"  # the group size the run started with (kept for a resume)
# Bumped whenever the definition of P changes, so older features are never reused.
PROJECTION_VERSION = "hash32-v1"


class FeaturesCancelled(StageCancelled):
    """The cancel callback asked to stop; the warmup and complete shards are kept."""


@dataclass(frozen=True)
class SpeedSettings:
    """Knobs that change speed and memory, never the features beyond float rounding.

    ``batch_size``: sequences per forward/backward (ans and idk rows mixed; halved on an
    out-of-memory error); ``group_items``: items whose gradients are projected together
    (None: as many as ``memory_budget_mb`` holds, at most ``shard_rows``); ``shard_rows``:
    rows per shard file (part of the inputs hash: it fixes the files);
    ``memory_budget_mb``: the gradient buffer's budget (None: half the memory free on the
    device after the warmup).
    """

    batch_size: int = 16
    group_items: int | None = None
    shard_rows: int = 1024
    memory_budget_mb: int | None = None

    def __post_init__(self) -> None:
        if min(self.batch_size, self.shard_rows, self.group_items or 1) < 1:
            raise ValueError("batch_size, group_items and shard_rows must be >= 1")
        if self.memory_budget_mb is not None and self.memory_budget_mb < 1:
            raise ValueError("memory_budget_mb must be >= 1")

    def group_size(self, n_params: int, row_bytes: int, device: torch.device) -> int:
        """Items per group: ``group_items``, or what the budget holds (2 rows per item)."""
        if self.group_items is not None:
            return min(self.group_items, self.shard_rows)
        rows = budget_bytes(device, self.memory_budget_mb) // (n_params * row_bytes)
        return max(1, min(self.shard_rows, int(rows) // 2))


@dataclass(frozen=True)
class FeaturesResult:
    """A complete features directory: ``features_dir`` (a FeatureStore), ``d``, ``n_items``,
    rows ``computed`` now vs ``reused``, ``skipped`` when already complete."""

    directory: Path
    features_dir: Path
    d: int
    n_items: int
    computed: int
    reused: int
    skipped: bool
    inputs_hash: str


def features_inputs_hash(
    config: FeaturesConfig,
    items: Sequence[Item],
    correctness: Mapping[str, float],
    seed: int,
    model_revision: str,
    speed: SpeedSettings,
    compute: Mapping[str, str] | None = None,
    target_loss: str = "mean",
) -> str:
    """Content hash of everything that determines the stage's files (32 hex chars).

    ``target_loss``: the training loss the gradients are taken of. ``compute``: the model's
    dtype, the device kind and the resolved projection dtype (``run_features`` fills it
    in), so features made in bfloat16 on a GPU are never reused by a float32 CPU job, nor
    the reverse."""
    scores = [float(correctness.get(item.id, 0.0)) for item in items]
    inputs = [
        config.to_dict(),
        seed,
        model_revision,
        config_hash([item.to_json() for item in items], 32),
        config_hash(scores, 32),
        speed.shard_rows,
        PROJECTION_VERSION,
        dict(compute or {}),
        target_loss,
    ]
    return config_hash(inputs, 32)


def run_features(
    config: FeaturesConfig,
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    correctness: Mapping[str, float],
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    speed: SpeedSettings | None = None,
    callbacks: StageCallbacks | None = None,
    target_loss: str = "mean",
) -> FeaturesResult:
    """Warm up, then write the features of every item of ``items`` to ``out_dir``.

    ``model``, ``tokenizer``: the base model as ``modeling.load_model`` gives it (on its
    device, in its dtype); the warmup LoRA is attached to it in place and removed before
    returning. ``correctness``: item id -> ``c_i`` (stage 1; missing ids count as 0).
    ``callbacks``: ``progress(stage, done, total, message)`` runs after the warmup and after
    every group; ``cancel()`` is checked before every batch (warmup and features);
    ``notice(stage, message)`` hears about batch sizes halved after out-of-memory errors.
    ``target_loss``: the job's training loss (``TrainingConfig.target_loss``), so the warmup
    and the gradients are those of the final training.
    Raises FeaturesCancelled, ValueError (empty pool, duplicate ids), ``memory.OutOfMemory``.
    """
    speed = speed or SpeedSettings()
    notice = (callbacks or StageCallbacks()).notice
    out = Path(out_dir)
    if not items or len({item.id for item in items}) != len(items):
        raise ValueError("items must be non-empty with unique ids")
    device = next(model.parameters()).device
    revision = str(getattr(model, "grait_revision", "unknown"))
    projection_dtype = resolve_projection_dtype(config.projection_dtype, device)
    compute = {
        "model_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "device": device.type,
        "projection_dtype": projection_dtype,
    }
    inputs_hash = features_inputs_hash(
        config, items, correctness, seed, revision, speed, compute, target_loss
    )
    previous = read_manifest(out)
    if previous is not None and previous.get("inputs_hash") == inputs_hash:
        d, n = int(previous["d"]), len(items)
        return FeaturesResult(out, out / "features", d, n, 0, n, True, inputs_hash)
    _claim(out, inputs_hash)
    tracker = StageTracker(STAGE, len(items), callbacks, FeaturesCancelled)
    warmup = run_warmup(
        model,
        tokenizer,
        items,
        correctness,
        config,
        seed,
        out / "warmup",
        inputs_hash,
        tracker.check,
        notice,
        target_loss,
    )
    try:
        tracker.report("warmup ready")
        # No optimiser step follows: the gradient pass runs the LoRA in the model's dtype.
        cast_lora(warmup.model, next(model.parameters()).dtype)
        ctx = _context(warmup, tokenizer, config, seed, projection_dtype, target_loss)
        group = _planned_group(out / PLAN, speed, ctx)
        computed, reused = _write_features(
            ctx, warmup.states, items, out / "features", speed, group, tracker, notice
        )
    finally:
        remove_lora(warmup.model)
    d = ctx.projector.d * len(warmup.states)
    info = {"stage": STAGE, "inputs_hash": inputs_hash, "d": d, "n": len(items)}
    info |= {"n_params": ctx.layout.n_params, "config": config.to_dict(), "seed": seed}
    info |= {"model_revision": revision, "warmup": warmup.info, "compute": compute}
    info |= {"group_items": group, "target_loss": target_loss}
    info |= {
        "checkpoints": len(warmup.states),
        "checkpoint_weights": [state.weight for state in warmup.states],
    }
    write_manifest(out, ["features/manifest.json", "warmup/manifest.json"], info)
    return FeaturesResult(
        out, out / "features", d, len(items), computed, reused, False, inputs_hash
    )


def _planned_group(path: Path, speed: SpeedSettings, ctx: FeatureContext) -> int:
    """Items per group: the size this directory's run started with (``plan.json``), else the
    one ``speed`` gives now, recorded. A resumed run (another attempt, another worker with
    other free memory) so cuts the same groups as the run it continues."""
    try:
        return int(json.loads(path.read_text())["group_items"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    row_bytes = ctx.projector.row_dtype.itemsize
    group = speed.group_size(ctx.layout.n_params, row_bytes, ctx.device)
    atomic_write_json(path, {"group_items": group})
    return group


def _claim(out: Path, inputs_hash: str) -> None:
    """Make ``out`` belong to ``inputs_hash``: remove the outputs of any other inputs."""
    try:
        owner = (out / INPUTS).read_text().strip().strip('"')
    except OSError:
        owner = None
    if owner != inputs_hash:
        for name in ("warmup", "features", PLAN, "manifest.json"):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        atomic_write_json(out / INPUTS, inputs_hash)


def _context(
    warmup: Warmup,
    tokenizer: object,
    config: FeaturesConfig,
    seed: int,
    projection_dtype: str,
    target_loss: str,
) -> FeatureContext:
    device = next(param.device for param in warmup.model.parameters())
    layout: LoraLayout = lora_layout(warmup.model)
    projector = Projector(layout.n_params, config.dim, seed, device, projection_dtype)
    return FeatureContext(
        warmup.model,
        tokenizer,
        layout,
        warmup.exp_avg.to(device),
        warmup.exp_avg_sq.to(device),
        config.adam_betas,
        config.precondition_eps,
        projector,
        device,
        target_loss,
        config.answer_gradient,
    )


def checkpoint_features(
    ctx: FeatureContext,
    states: Sequence[WarmupState],
    items: Sequence[Item],
    batching: Batching,
    before_batch: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_ans, F_idk) of ``items``, each (n, K * d), over the warmup's K checkpoints.

    One state (the default): ``batched_features`` at ``ctx`` as it is. Several: for each
    state, oldest first, its LoRA weights are loaded into ``ctx.model`` and its moments
    used; each state's unit rows are scaled by ``sqrt(state.weight)`` and concatenated, so
    rows stay unit length and ``<F_i, F_j> = sum_k w_k cos_k(i, j)`` (LESS's learning-rate
    weighted sum over checkpoints). Side effect: ``ctx.model`` ends at the last (final) state.
    """
    if len(states) == 1:
        return batched_features(ctx, items, batching, before_batch)
    answers, refusals = [], []
    for state in states:
        load_lora_weights(ctx.model, state.weights)
        moments = state.exp_avg.to(ctx.device), state.exp_avg_sq.to(ctx.device)
        at_state = replace(ctx, exp_avg=moments[0], exp_avg_sq=moments[1])
        ans, idk = batched_features(at_state, items, batching, before_batch)
        scale = math.sqrt(state.weight)
        answers.append(ans * scale)
        refusals.append(idk * scale)
    return torch.cat(answers, dim=1), torch.cat(refusals, dim=1)


def _write_features(
    ctx: FeatureContext,
    states: Sequence[WarmupState],
    items: Sequence[Item],
    directory: Path,
    speed: SpeedSettings,
    group: int,
    tracker: StageTracker,
    notice: NoticeFn | None,
) -> tuple[int, int]:
    """Append every group not already in complete shards; returns (computed, reused) rows.

    A group whose gradient buffer or projection runs out of memory is retried at half the
    size (the later groups keep it); batches within a group halve on their own."""
    if read_manifest(directory) is not None:  # killed after the writer closed
        tracker.advance(len(items), "features already complete")
        return 0, len(items)
    d = ctx.projector.d * len(states)
    batching = Batching(speed.batch_size, STAGE, notice)
    with FeatureWriter(directory, d, shard_rows=speed.shard_rows, resume=True) as writer:
        reused = writer.rows_written
        tracker.advance(reused, f"{reused} rows kept from an earlier run")
        start = reused
        while start < len(items):
            # Groups never straddle shards: a resumed run cuts the same groups.
            shard_end = (start // speed.shard_rows + 1) * speed.shard_rows

            def attempt(size: int, start: int = start, shard_end: int = shard_end) -> list[Item]:
                chosen = list(items[start : min(start + size, shard_end, len(items))])
                with torch.enable_grad():
                    ans, idk = checkpoint_features(ctx, states, chosen, batching, tracker.check)
                writer.append([item.id for item in chosen], ans, idk)
                return chosen

            chosen, group = retry_halving(
                attempt, group, stage=STAGE, what="group size", notice=notice
            )
            start += len(chosen)
            tracker.advance(len(chosen), f"{writer.rows_written}/{len(items)} items")
    return len(items) - reused, reused
