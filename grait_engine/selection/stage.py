"""The selection stage (METHOD.md stages 4-5): features + ik/idk split -> ``selection.json``.

``run_selection`` is the stage (inputs hash, reuse, callbacks, files); the computation is
``select.compute_selection``, which writes nothing (benchmarks and analyses call it on
their own). The stage does not checkpoint (about a minute at N = 100,000, see ``select``):
a killed run starts over. A complete output whose inputs hash the same is reused
(``skipped=True``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from grait_engine.artifacts import atomic_write_json, config_hash, read_manifest, write_manifest
from grait_engine.features_store import FeatureStore
from grait_engine.job_folder import SELECTION_FILE
from grait_engine.selection.config import SelectionConfig
from grait_engine.selection.greedy import GreedyTuning
from grait_engine.selection.inputs import PoolSplit
from grait_engine.selection.report import selection_document
from grait_engine.selection.select import compute_selection
from grait_engine.stages import StageCallbacks, StageCancelled

STAGE = "select"


class SelectionCancelled(StageCancelled):
    """The cancel callback asked to stop; nothing was written."""


@dataclass(frozen=True)
class SelectionResult:
    """Where ``selection.json`` is, what it holds, and whether it was reused; its
    ``directory`` and ``inputs_hash`` (``stages.StageResult``)."""

    path: Path
    variant: str
    n_ik: int
    n_idk: int
    notes: tuple[str, ...]
    skipped: bool
    directory: Path
    inputs_hash: str


def run_selection(
    config: SelectionConfig,
    split: PoolSplit,
    features_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    tuning: GreedyTuning | None = None,
    block_rows: int = 4096,
    callbacks: StageCallbacks | None = None,
) -> SelectionResult:
    """Select and weight, write ``out_dir/selection.json`` and its manifest atomically.

    ``features_dir``: a complete feature store holding every id of ``split``. ``tuning`` and
    ``block_rows`` change speed and memory only, never the result, so they are not hashed.
    ``callbacks``: ``progress("select", done, total, message)`` over the idk picks and
    ``cancel()``, checked at the same points. Raises ``SelectionInputError`` for ids
    missing from the store, ``SelectionCancelled``.
    """
    callbacks = callbacks or StageCallbacks()
    out = Path(out_dir)
    store = FeatureStore.open(features_dir)
    inputs = [config.knobs(), seed, split.digest(), config_hash(store.manifest["files"], 32)]
    inputs_hash = config_hash(inputs, length=32)
    previous = read_manifest(out)
    if previous is not None and previous.get("inputs_hash") == inputs_hash:
        return _result(out, inputs_hash, skipped=True)

    def on_block(done: int, total: int) -> None:
        callbacks.report(STAGE, done, total, f"{config.variant}: {done}/{total} idk items")
        if callbacks.cancelled():
            raise SelectionCancelled(f"cancelled after {done} idk items")

    outcome = compute_selection(
        config, split, store, seed=seed, tuning=tuning, block_rows=block_rows, on_block=on_block
    )
    on_block(len(outcome.idk_ids), len(outcome.idk_ids))
    atomic_write_json(out / SELECTION_FILE, selection_document(config, seed, outcome))
    write_manifest(out, [SELECTION_FILE], {"stage": STAGE, "inputs_hash": inputs_hash})
    return _result(out, inputs_hash, skipped=False)


def _result(out: Path, inputs_hash: str, *, skipped: bool) -> SelectionResult:
    document = json.loads((out / SELECTION_FILE).read_text())
    return SelectionResult(
        path=out / SELECTION_FILE,
        variant=document["variant"],
        n_ik=document["n_ik"],
        n_idk=document["n_idk"],
        notes=tuple(document["notes"]),
        skipped=skipped,
        directory=out,
        inputs_hash=inputs_hash,
    )
