"""The features stage (METHOD.md stage 3): items -> ``F_ans``, ``F_idk`` in shards, resumable.

Layout of ``out_dir``:

- ``inputs.json``: the inputs hash of the run that owns the directory (a different hash
  wipes ``warmup/`` and ``features/`` first);
- ``warmup/``: adapter, moments, manifest (see ``warmup``); reused on a restart;
- ``features/``: a ``FeatureWriter`` directory (``features_store``) with both ``ans`` and
  ``idk`` rows, ids in pool order;
- ``manifest.json``: written last; a complete directory for the same inputs is skipped.

Items are processed in shards of ``shard_rows`` (the writer's shard size), each cut into
groups of ``group_items`` whose gradients are projected together. A restart keeps the
complete shards (``FeatureWriter(resume=True)``) and recomputes from the first missing one;
groups never straddle shards, so a resumed run computes exactly the same groups and writes
byte-identical shards. Memory: ``2 * group_items * D`` float32 gradients, one shard buffer,
and the projection cache; independent of the number of items.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from grait_engine.artifacts import atomic_write_json, config_hash, read_manifest, write_manifest
from grait_engine.features.compute import FeatureContext, batched_features
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.pergrad import lora_layout
from grait_engine.features.projection import Projector
from grait_engine.features.warmup import Warmup, run_warmup
from grait_engine.features_store import FeatureWriter
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.records.item import Item

STAGE = "features"
INPUTS = "inputs.json"
ProgressFn = Callable[[str, int, int, str], None]
CancelFn = Callable[[], bool]


class FeaturesCancelled(RuntimeError):
    """The cancel callback asked to stop; the warmup and complete shards are kept."""


@dataclass(frozen=True)
class SpeedSettings:
    """Knobs that change speed and memory, never the features of a fixed layout.

    ``batch_size``: sequences per forward/backward (ans and idk rows mixed);
    ``group_items``: items projected together (must divide ``shard_rows``);
    ``shard_rows``: rows per shard file; ``projection_cache_mb``: keep ``P`` on the device
    when it fits. ``shard_rows`` and ``group_items`` fix which rows share a matmul, so they
    are part of the inputs hash (results differ only by float rounding, not bytes).
    """

    batch_size: int = 16
    group_items: int = 64
    shard_rows: int = 1024
    projection_cache_mb: int = 2048

    def __post_init__(self) -> None:
        if min(self.batch_size, self.group_items, self.shard_rows) < 1:
            raise ValueError("batch_size, group_items and shard_rows must be >= 1")
        if self.shard_rows % self.group_items:
            raise ValueError("group_items must divide shard_rows (groups never straddle shards)")


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
) -> str:
    """Content hash of everything that determines the stage's files (32 hex chars)."""
    scores = [float(correctness.get(item.id, 0.0)) for item in items]
    inputs = [
        config.to_dict(),
        seed,
        model_revision,
        config_hash([item.to_json() for item in items], 32),
        config_hash(scores, 32),
        [speed.shard_rows, speed.group_items],
    ]
    return config_hash(inputs, 32)


def run_features(
    config: FeaturesConfig,
    model_spec: ModelSpec,
    items: Sequence[Item],
    correctness: Mapping[str, float],
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    *,
    speed: SpeedSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> FeaturesResult:
    """Warm up, then write the features of every item of ``items`` to ``out_dir``.

    ``correctness``: item id -> ``c_i`` (stage 1; missing ids count as 0). Loads the model
    of ``model_spec`` itself. ``progress(stage, done, total, message)`` runs after the
    warmup and after every group; ``cancel()`` is checked before every batch (warmup and
    features). Raises FeaturesCancelled, ValueError (empty pool, duplicate ids).
    """
    speed = speed or SpeedSettings()
    out = Path(out_dir)
    if not items or len({item.id for item in items}) != len(items):
        raise ValueError("items must be non-empty with unique ids")
    model, tokenizer = load_model(model_spec)
    revision = str(getattr(model, "grait_revision", "unknown"))
    inputs_hash = features_inputs_hash(config, items, correctness, seed, revision, speed)
    previous = read_manifest(out)
    if previous is not None and previous.get("inputs_hash") == inputs_hash:
        d, n = int(previous["d"]), len(items)
        return FeaturesResult(out, out / "features", d, n, 0, n, True, inputs_hash)
    _claim(out, inputs_hash)
    tracker = _Tracker(len(items), progress, cancel)
    warmup = run_warmup(
        model, tokenizer, items, correctness, config, seed, out / "warmup", inputs_hash,
        tracker.check,
    )  # fmt: skip
    tracker.report("warmup ready")
    ctx = _context(warmup, tokenizer, config, seed, speed)
    computed, reused = _write_features(ctx, items, out / "features", speed, tracker)
    info = {"stage": STAGE, "inputs_hash": inputs_hash, "d": ctx.projector.d, "n": len(items)}
    info |= {"n_params": ctx.layout.n_params, "config": config.to_dict(), "seed": seed}
    info |= {"model_revision": revision, "warmup": warmup.info}
    write_manifest(out, ["features/manifest.json", "warmup/manifest.json"], info)
    return FeaturesResult(
        out, out / "features", ctx.projector.d, len(items), computed, reused, False, inputs_hash
    )


def _claim(out: Path, inputs_hash: str) -> None:
    """Make ``out`` belong to ``inputs_hash``: remove the outputs of any other inputs."""
    try:
        owner = (out / INPUTS).read_text().strip().strip('"')
    except OSError:
        owner = None
    if owner != inputs_hash:
        for name in ("warmup", "features", "manifest.json"):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        atomic_write_json(out / INPUTS, inputs_hash)


def _context(
    warmup: Warmup, tokenizer: object, config: FeaturesConfig, seed: int, speed: SpeedSettings
) -> FeatureContext:
    device = next(param.device for param in warmup.model.parameters())
    layout = lora_layout(warmup.model)
    cache = speed.projection_cache_mb * 2**20
    projector = Projector(layout.n_params, config.dim, seed, device, cache, config.projection_dtype)
    return FeatureContext(
        warmup.model, tokenizer, layout, warmup.exp_avg.to(device), warmup.exp_avg_sq.to(device),
        config.adam_betas, config.precondition_eps, projector, device,
    )  # fmt: skip


def _write_features(
    ctx: FeatureContext,
    items: Sequence[Item],
    directory: Path,
    speed: SpeedSettings,
    tracker: _Tracker,
) -> tuple[int, int]:
    """Append every group not already in complete shards; returns (computed, reused) rows."""
    if read_manifest(directory) is not None:  # killed after the writer closed
        tracker.advance(len(items), "features already complete")
        return 0, len(items)
    d = ctx.projector.d
    with FeatureWriter(directory, d, shard_rows=speed.shard_rows, resume=True) as writer:
        reused = writer.rows_written
        tracker.advance(reused, f"{reused} rows kept from an earlier run")
        for start in range(reused, len(items), speed.group_items):
            group = items[start : start + speed.group_items]
            with torch.enable_grad():
                ans, idk = batched_features(ctx, group, speed.batch_size, tracker.check)
            writer.append([item.id for item in group], ans, idk)
            tracker.advance(len(group), f"{writer.rows_written}/{len(items)} items")
    return len(items) - reused, reused


class _Tracker:
    """Counts items, reports progress, and raises FeaturesCancelled when asked to."""

    def __init__(self, total: int, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        self.total, self.done = total, 0
        self.progress, self.cancel = progress, cancel

    def report(self, message: str) -> None:
        if self.progress is not None:
            self.progress(STAGE, self.done, self.total, message)

    def advance(self, n: int, message: str) -> None:
        self.done += n
        self.report(message)

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise FeaturesCancelled(f"cancelled after {self.done} of {self.total} items")
