"""The ik/idk split (METHOD.md stage 2): ``c_i >= tau`` keeps its answer, the rest refuse.

Writes ``split.json``::

    {"stage": "split", "tau": 0.5, "task": "open", "n_pool": N, "n_ik": ..., "n_idk": ...,
     "ik": [ids], "idk": [ids], "correctness": {id: c_i}, "probe_inputs_hash": "..."}

(ids in pool order; idk items get the target ``prompts.REFUSAL``) and a manifest. Torch-free.
A stage of its own (``stages``: one ``run_<stage>`` per package's ``stage.py``): it reads the
probe's files, not its code, and ``load_split`` gives the selection and the methods their input.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grait_engine.artifacts import atomic_write_json, config_hash, read_manifest, write_manifest
from grait_engine.job_folder import SPLIT_FILE
from grait_engine.probe.store import read_probe
from grait_engine.selection.inputs import PoolSplit
from grait_engine.stages import StageCallbacks

STAGE = "split"
DEFAULT_TAU = 0.5


@dataclass(frozen=True)
class SplitResult:
    """Where ``split.json`` is and its counts; ``skipped`` when reused as it was; its
    ``directory`` and ``inputs_hash`` (``stages.StageResult``)."""

    path: Path
    tau: float
    n_pool: int
    n_ik: int
    n_idk: int
    skipped: bool
    directory: Path
    inputs_hash: str


def check_tau(tau: Any) -> float:
    """``tau`` as a float in [0, 1]; ValueError otherwise (booleans and NaN included)."""
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be a number in [0, 1], got {tau!r}")
    return float(tau)


def split_document(ids: Sequence[str], correctness: Sequence[float], tau: float) -> dict[str, Any]:
    """The ``split.json`` object for aligned ``ids`` and ``correctness`` (pure function)."""
    tau = check_tau(tau)
    values = [float(c) for c in correctness]
    if any(not math.isfinite(c) for c in values):
        raise ValueError("correctness holds a non-finite value")
    ik = [i for i, c in zip(ids, values, strict=True) if c >= tau]
    idk = [i for i, c in zip(ids, values, strict=True) if c < tau]
    return {
        "stage": STAGE,
        "tau": tau,
        "n_pool": len(values),
        "n_ik": len(ik),
        "n_idk": len(idk),
        "ik": ik,
        "idk": idk,
        "correctness": dict(zip(ids, values, strict=True)),
    }


def run_split(
    probe_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    tau: float = DEFAULT_TAU,
    *,
    callbacks: StageCallbacks | None = None,
) -> SplitResult:
    """Split a complete probe at ``tau``; write ``out_dir/split.json`` and its manifest.

    Raises ValueError for a bad ``tau``, ProbeIncompleteError for an unfinished probe.
    A complete output for the same probe and ``tau`` is reused (``skipped=True``).
    ``callbacks``: the common stage contract; the split is one quick pass over the probe's
    records, so it neither reports progress nor checks for a cancel (the pipeline checks
    between stages). No ``seed``: nothing in it is random.
    """
    tau = check_tau(tau)
    manifest, records = read_probe(probe_dir)
    out = Path(out_dir)
    inputs_hash = config_hash([manifest["inputs_hash"], manifest["files"], tau], 32)
    previous = read_manifest(out)
    if previous is not None and previous.get("inputs_hash") == inputs_hash:
        return _result(out, inputs_hash, skipped=True)
    document = split_document([r["id"] for r in records], [r["correctness"] for r in records], tau)
    document["task"] = manifest.get("task")
    document["probe_inputs_hash"] = manifest["inputs_hash"]
    atomic_write_json(out / SPLIT_FILE, document)
    write_manifest(out, [SPLIT_FILE], {"stage": STAGE, "inputs_hash": inputs_hash})
    return _result(out, inputs_hash, skipped=False)


def load_split(path: str | os.PathLike[str]) -> PoolSplit:
    """The selection stage's input from a ``split.json`` (or a directory holding one)."""
    path = Path(path)
    document = json.loads((path / SPLIT_FILE if path.is_dir() else path).read_text())
    correctness = document["correctness"]
    return PoolSplit(
        ik_ids=tuple(document["ik"]),
        ik_correctness=tuple(correctness[i] for i in document["ik"]),
        idk_ids=tuple(document["idk"]),
    )


def _result(out: Path, inputs_hash: str, *, skipped: bool) -> SplitResult:
    document = json.loads((out / SPLIT_FILE).read_text())
    return SplitResult(
        out / SPLIT_FILE,
        document["tau"],
        document["n_pool"],
        document["n_ik"],
        document["n_idk"],
        skipped,
        out,
        inputs_hash,
    )
