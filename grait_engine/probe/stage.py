"""The probe stage (METHOD.md stage 1): items -> per-item results in shards, resumable.

The pool is cut into shards of ``shard_size`` items in pool order. Each finished shard is
written atomically and recorded (with its sha256) in ``checkpoint.json``; a killed or
cancelled run, started again with the same inputs, keeps those shards and computes only the
others. The records of an item do not depend on which batch or shard it is in (see
``sampling``), so a resumed run writes the same files as an uninterrupted one. The manifest
is written last; a complete directory whose inputs hash the same is reused as is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grait_engine.artifacts import config_hash, read_manifest, write_manifest
from grait_engine.memory import Batching
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.runner import Prepared, pool_task, prepare, probe_items
from grait_engine.probe.store import (
    CHECKPOINT,
    clear_stale,
    load_checkpoint,
    save_checkpoint,
    shard_name,
    write_shard,
)
from grait_engine.records.item import Item
from grait_engine.stages import StageCallbacks, StageCancelled, StageTracker

STAGE = "probe"


class ProbeCancelled(StageCancelled):
    """The cancel callback asked to stop; finished shards are kept for a resume."""


@dataclass(frozen=True)
class ProbeResult:
    """A complete probe directory: its ``shards`` (names, in pool order), how many were
    ``computed`` now and ``reused`` from an interrupted run, and ``skipped`` when the whole
    directory was already complete for the same inputs."""

    directory: Path
    task: str
    n_items: int
    shards: tuple[str, ...]
    computed: int
    reused: int
    skipped: bool
    inputs_hash: str


def probe_inputs_hash(
    config: ProbeConfig,
    items: Sequence[Item],
    shots: Sequence[Item] | None,
    seed: int,
    model_revision: str,
) -> str:
    """Content hash of everything that determines the probe's results (32 hex chars)."""
    inputs = [
        config.to_dict(),
        seed,
        model_revision,
        config_hash([item.to_json() for item in items], 32),
        None if shots is None else config_hash([s.to_json() for s in shots], 32),
    ]
    return config_hash(inputs, 32)


def run_probe(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    out_dir: str | os.PathLike[str],
    *,
    config: ProbeConfig | None = None,
    shots: Sequence[Item] | None = None,
    seed: int = 0,
    model_revision: str | None = None,
    batch_size: int = 16,
    shard_size: int = 256,
    callbacks: StageCallbacks | None = None,
) -> ProbeResult:
    """Probe ``items`` with ``model`` (eval mode) and write ``out_dir`` (see ``store``).

    ``shots``: the few-shot pool (None: the items themselves). ``model_revision`` names the
    weights in the inputs hash (default ``model.grait_revision`` from ``load_model``).
    ``batch_size`` (prompts per forward pass; an ``open`` batch decodes ``batch_size *
    n_samples`` rows) and ``shard_size`` change speed and layout, not results.
    ``callbacks``: ``progress(stage, done, total, message)`` runs after every batch;
    ``cancel()`` is checked before every batch; a batch that runs out of memory is retried
    at half the size, told to ``notice(stage, message)``. Raises ProbeInputError,
    PromptTooLongError (listing every offending id, before any model work), LetterTokenError,
    ProbeCancelled.
    """
    config = config or ProbeConfig()
    callbacks = callbacks or StageCallbacks()
    task = pool_task(items)
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}")
    out = Path(out_dir)
    revision = model_revision or str(getattr(model, "grait_revision", "unknown"))
    inputs_hash = probe_inputs_hash(config, items, shots, seed, revision)
    previous = read_manifest(out)
    if previous is not None and previous.get("inputs_hash") == inputs_hash:
        names = tuple(sorted(previous["files"]))
        return ProbeResult(out, task, len(items), names, 0, len(names), True, inputs_hash)
    prepared = prepare(model, tokenizer, items, config, shots, seed)
    out.mkdir(parents=True, exist_ok=True)
    finished = load_checkpoint(out, inputs_hash, shard_size)
    if not finished:
        clear_stale(out)
    names, computed = _write_shards(
        model,
        tokenizer,
        prepared,
        out,
        config,
        seed,
        (inputs_hash, shard_size, Batching(batch_size, STAGE, callbacks.notice)),
        finished,
        StageTracker(STAGE, len(items), callbacks, ProbeCancelled),
    )
    info = {
        "stage": STAGE,
        "task": task,
        "inputs_hash": inputs_hash,
        "config": config.to_dict(),
        "seed": seed,
        "model_revision": revision,
        "n_items": len(items),
        "shard_size": shard_size,
    }
    write_manifest(out, names, info)
    (out / CHECKPOINT).unlink(missing_ok=True)
    reused = len(names) - computed
    return ProbeResult(out, task, len(items), names, computed, reused, False, inputs_hash)


def _write_shards(
    model: Any,
    tokenizer: Any,
    prepared: Prepared,
    out: Path,
    config: ProbeConfig,
    seed: int,
    layout: tuple[str, int, Batching],
    finished: dict[str, str],
    tracker: StageTracker,
) -> tuple[tuple[str, ...], int]:
    """Compute and write every shard not in ``finished``; returns (all names, computed).

    ``layout``: (inputs hash, shard size, batching). After each shard the checkpoint is
    updated, so a kill loses at most the shard in progress.
    """
    inputs_hash, shard_size, batching = layout
    total = len(prepared.items)
    names = tuple(shard_name(s) for s in range(-(-total // shard_size)))
    computed = 0
    for s, name in enumerate(names):
        indices = range(s * shard_size, min((s + 1) * shard_size, total))
        if name in finished:
            tracker.advance(len(indices), f"shard {s + 1}/{len(names)} kept from an earlier run")
            continue
        records = probe_items(
            model,
            tokenizer,
            prepared,
            indices,
            config,
            seed,
            batching,
            on_batch=lambda n: tracker.advance(n, f"{tracker.done + n}/{total} items probed"),
            before_batch=tracker.check,
        )
        finished[name] = write_shard(out, s, records)
        save_checkpoint(out, inputs_hash, shard_size, finished)
        computed += 1
    return names, computed
