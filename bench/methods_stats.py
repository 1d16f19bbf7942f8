"""The statistics of ``bench/methods.py``: per-model summaries (mean ± sd of every metric)
and GRAIT's THS differences with paired-bootstrap CIs, from the finished runs.

A run is a dict ``{task, world, seed, method, job_dir, report, ...}``; the maths lives in
``grait_engine.reporting.compare``. ``order`` is the method keys in table order.
"""

from __future__ import annotations

from collections.abc import Sequence

from methods_report import TESTS

from grait_engine.reporting.compare import (
    Difference,
    Stat,
    paired_run,
    read_labels,
    summary_row,
    ths_difference,
)

BASE_MODELS = ("init_basic", "init_refuse")


def model_results(
    rows: list[dict], task: str, test: str, model: str, world: int | None = None
) -> list[dict]:
    """The ``eval[test][model]`` blocks of a model's runs (``world`` None: all worlds).

    ``init_basic`` / ``init_refuse`` are M0 and do not depend on the method, so they are
    taken once per (world, seed), from the first method run there."""
    mine = [r for r in rows if r["task"] == task and world in (None, r["world"])]
    if model in BASE_MODELS:
        firsts: dict[tuple[int, int], dict] = {}
        for row in mine:
            firsts.setdefault((row["world"], row["seed"]), row)
        return [row["report"]["eval"][test][model] for row in firsts.values()]
    return [row["report"]["eval"][test]["tuned"] for row in mine if row["method"] == model]


def summaries(
    rows: list[dict], tasks: list[str], order: Sequence[str], world: int | None = None
) -> dict[str, dict[str, dict[str, dict[str, Stat]]]]:
    """``{task: {test: {model: {metric: Stat}}}}`` for init_basic, init_refuse and every
    method run (pooled over worlds, or one ``world``)."""
    methods = [m for m in order if any(r["method"] == m for r in rows)]
    out: dict[str, dict[str, dict[str, dict[str, Stat]]]] = {}
    for task in tasks:
        out[task] = {}
        for test in TESTS:
            out[task][test] = {
                model: summary_row(model_results(rows, task, test, model, world))
                for model in [*BASE_MODELS, *methods]
            }
            # init_basic is THS's reference: THS and oracle share are 0 by definition.
            basic = out[task][test]["init_basic"]
            basic["ths"] = basic["oracle_share"] = Stat(0.0, 0.0, basic["pc"].n)
    return out


def deltas(
    rows: list[dict],
    tasks: list[str],
    n_resamples: int,
    order: Sequence[str],
    world: int | None = None,
) -> dict[str, dict[str, dict[str, Difference]]]:
    """``{task: {test: {baseline: Difference}}}``: THS of grait minus each other method run,
    paired-bootstrap 95% CI pooled over the worlds and seeds (or one ``world``)."""
    out: dict[str, dict[str, dict[str, Difference]]] = {}
    runs_of = {(r["task"], r["world"], r["seed"], r["method"]): r for r in rows}
    baselines = [m for m in order if m != "grait" and any(r["method"] == m for r in rows)]
    for task in tasks:
        out[task] = {}
        for test in TESTS:
            out[task][test] = {}
            grait_rows = [
                r
                for r in rows
                if r["task"] == task and r["method"] == "grait" and world in (None, r["world"])
            ]
            for baseline in baselines:
                pairs = []
                for row in grait_rows:
                    other = runs_of.get((task, row["world"], row["seed"], baseline))
                    if other is None:
                        continue
                    pairs.append(
                        paired_run(
                            row["world"],
                            row["seed"],
                            read_labels(row["job_dir"], test, "init_basic"),
                            read_labels(row["job_dir"], test, "tuned"),
                            read_labels(other["job_dir"], test, "tuned"),
                        )
                    )
                if pairs:
                    out[task][test][baseline] = ths_difference(pairs, n_resamples)
    return out
