"""Statistics of a method comparison (``bench/methods.py``): per-item labels of finished jobs,
THS of a label vector, the paired bootstrap of THS differences and summary rows.

Torch-free and small: pure functions over label sequences and ``report.json`` blocks.

- :func:`read_labels`: ``{item id: label}`` of one model on one test set of a job folder.
- :func:`ths_of_labels`: THS (METHOD.md stage 7) of a label vector against ``init_basic``'s.
- :func:`paired_run` / :func:`ths_difference`: the paired-bootstrap 95% CI of the THS
  difference of method A minus method B over test items, pooled over worlds and seeds.
- :func:`summary_row`: mean and sd over runs of a model's rates, THS, oracle share, F1 and
  refusal on unknown / known items.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grait_engine.evaluation.grade import rates, ths
from grait_engine.job_folder import EVAL_DIR
from grait_engine.reporting.data import RESULT_COLUMNS, row_metrics

PREDICTIONS = "predictions.jsonl"  # as grait_engine.evaluation.evaluate writes it
# The metrics of a summary row, in table order; the last two come from ``by_known``.
SUMMARY_METRICS = tuple(key for key, _ in RESULT_COLUMNS)


def read_labels(job_dir: str | Path, test: str, model: str) -> dict[str, str]:
    """The per-item labels of a finished job: ``{id: label}`` in file order.

    Input: the job folder (``run_job``'s ``out_dir``), the test set name (a key of the job's
    ``eval_datasets``) and the model (``init_basic``, ``init_refuse`` or ``tuned``). Reads
    ``<job_dir>/eval/<test>/<model>/predictions.jsonl``; labels are refused, correct, wrong or
    unparsed. Raises FileNotFoundError when the job has no such predictions.
    """
    path = Path(job_dir) / EVAL_DIR / test / model / PREDICTIONS
    labels: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["id"]] = row["label"]
    return labels


def ths_of_labels(labels: Sequence[str], basic: Sequence[str]) -> float | None:
    """THS = Pc - Pw * Pc0 / Pw0 (percent) of ``labels`` against the ``init_basic`` labels
    ``basic`` of the same test set (the two need not be aligned; only their rates count).
    None when ``basic`` has no wrong answer (THS undefined)."""
    mine, base = rates(labels), rates(basic)
    return ths(mine["pc"], mine["pw"], base["pc"], base["pw"])


@dataclass(frozen=True)
class PairedRun:
    """One (world, seed) run of two methods on one test set, labels aligned item by item.

    ``basic``: init_basic's labels (the run's reference for THS); ``a`` and ``b``: the tuned
    labels of method A and method B. Runs of the same ``world`` share one test set, so they
    must have the same number of items in the same order.
    """

    world: Any
    seed: Any
    basic: tuple[str, ...]
    a: tuple[str, ...]
    b: tuple[str, ...]


def paired_run(
    world: Any, seed: Any, basic: Mapping[str, str], a: Mapping[str, str], b: Mapping[str, str]
) -> PairedRun:
    """A :class:`PairedRun` from three ``{id: label}`` maps (:func:`read_labels`), aligned in
    ``basic``'s item order. Raises ValueError when the three do not label the same items."""
    ids = list(basic)
    for name, labels in (("a", a), ("b", b)):
        if set(labels) != set(ids):
            raise ValueError(f"world {world} seed {seed}: labels of {name} are for other items")
    return PairedRun(
        world, seed, tuple(basic.values()), tuple(a[i] for i in ids), tuple(b[i] for i in ids)
    )


@dataclass(frozen=True)
class Difference:
    """THS of A minus THS of B, averaged over runs, with its percentile bootstrap CI.

    ``mean``: the observed difference (no resampling); ``ci_low`` / ``ci_high``: the 2.5th
    and 97.5th percentiles over the resamples. None where THS is undefined. ``n_runs``: runs
    pooled; ``n_resamples``: resamples in which every run's THS was defined.
    """

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n_runs: int
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_runs": self.n_runs,
            "n_resamples": self.n_resamples,
        }


def _rates_matrix(runs: Sequence[PairedRun]) -> np.ndarray:
    """0/1 columns (correct, wrong) of basic, a and b for each run: items x (6 * runs)."""
    columns = []
    for run in runs:
        for labels in (run.basic, run.a, run.b):
            array = np.asarray(labels)
            columns += [array == "correct", array == "wrong"]
    return np.stack(columns, axis=1).astype(np.float64)


def _ths_columns(pc: np.ndarray, pw: np.ndarray, pc0: np.ndarray, pw0: np.ndarray) -> np.ndarray:
    """THS per resample from rate columns; NaN where ``pw0`` is 0 (THS undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pw0 > 0, pc - pw * pc0 / pw0, np.nan)


def ths_difference(
    runs: Sequence[PairedRun], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> Difference:
    """Paired bootstrap of THS(A) - THS(B) over test items, pooled over worlds and seeds.

    Each of ``n_resamples`` resamples draws the test items of each world with replacement
    (one draw per world, the same for every seed and both methods of that world, so the
    comparison is paired); in it, THS of A and of B are computed per run against that run's
    init_basic on the same resample, and the differences are averaged over all runs. The CI
    is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of those averages. A
    resample where some run's init_basic has no wrong answer (THS undefined) is dropped.
    Deterministic for a given ``seed``. Raises ValueError on no runs or unequal lengths
    within a world.
    """
    if not runs:
        raise ValueError("no runs to compare")
    observed = [(ths_of_labels(run.a, run.basic), ths_of_labels(run.b, run.basic)) for run in runs]
    differences = [a - b for a, b in observed if a is not None and b is not None]
    if len(differences) < len(runs):
        return Difference(None, None, None, len(runs), 0)
    mean = math.fsum(differences) / len(runs)
    rng = np.random.default_rng(seed)
    total = np.zeros(n_resamples)
    for world in sorted({run.world for run in runs}, key=str):
        mine = [run for run in runs if run.world == world]
        n = len(mine[0].basic)
        if any(len(x) != n for run in mine for x in (run.basic, run.a, run.b)):
            raise ValueError(f"world {world}: runs label different numbers of items")
        # Drawing n items with replacement = multinomial counts per item (one row per resample).
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)
        # Rates of every run's basic, a and b in every resample: one matrix product.
        shares = 100 * counts @ _rates_matrix(mine) / n
        for k in range(len(mine)):
            pc0, pw0, pc_a, pw_a, pc_b, pw_b = (shares[:, 6 * k + j] for j in range(6))
            total += _ths_columns(pc_a, pw_a, pc0, pw0) - _ths_columns(pc_b, pw_b, pc0, pw0)
    averages = total[~np.isnan(total)] / len(runs)
    if averages.size == 0:
        return Difference(mean, None, None, len(runs), 0)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(averages, [tail, 100 - tail])
    return Difference(mean, float(low), float(high), len(runs), int(averages.size))


@dataclass(frozen=True)
class Stat:
    """Mean and sample sd (n - 1; 0 for one value) over the ``n`` runs where a metric is
    defined; ``mean`` and ``sd`` are None when it is defined in none."""

    mean: float | None
    sd: float | None
    n: int


def stat(values: Sequence[float | None]) -> Stat:
    """The :class:`Stat` of ``values``, ignoring None (an undefined THS, say)."""
    known = [float(v) for v in values if v is not None]
    if not known:
        return Stat(None, None, 0)
    sd = statistics.stdev(known) if len(known) > 1 else 0.0
    return Stat(statistics.fmean(known), sd, len(known))


def summary_row(results: Sequence[Mapping[str, Any]]) -> dict[str, Stat]:
    """The summary row of a group of runs: ``{metric: Stat}`` for every metric of
    :data:`SUMMARY_METRICS`, over ``results`` (one ``eval[test][model]`` block per run)."""
    per_run = [row_metrics(result) for result in results]
    return {key: stat([values[key] for values in per_run]) for key in SUMMARY_METRICS}
