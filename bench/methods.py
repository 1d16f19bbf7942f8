"""GRAIT against its baselines and ablations on the small toy world; writes docs/results.md.

For each task type (open, choice) and seed (0, 1, 2) it runs, with one shared budget
``n_ik + n_idk`` and one training recipe: ``van``, ``cor_rait``, ``corcer_rait``, ``grait``,
GRAIT without selection (``variant: random``), GRAIT without weighting (``weighting: none``)
and the released code's weighting (``sign: +1, mean_weight: 0.5``). The base model's rows
(``init_basic``, ``init_refuse``) come from the same runs. Probe and features are computed
once per (task, seed) and reused by every method (content-addressed stage cache).

Usage::

    .venv/bin/python bench/methods.py [--seeds 0 1 2] [--out docs/results.md] [--threads 1]
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Run as a script: import the project, never this folder's select.py as the stdlib module.
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from grait_cli.demo import ensure_world  # noqa: E402
from grait_engine.pipeline.config import load_job_config  # noqa: E402
from grait_engine.pipeline.run import run_job  # noqa: E402

# name -> method block (budget added per task)
METHODS: dict[str, dict] = {
    "van": {"type": "van"},
    "cor_rait": {"type": "cor_rait"},
    "corcer_rait": {"type": "corcer_rait"},
    "grait": {"type": "grait"},
    "grait, no selection": {"type": "grait", "variant": "random"},
    "grait, no weighting": {"type": "grait", "weighting": "none"},
    "grait, sign +1": {"type": "grait", "sign": 1, "mean_weight": 0.5},
}
TASKS = ("choice", "open")
BUDGET = {"n_ik": 150, "n_idk": 150}
TRAINING = {"lora_r": 16, "epochs": 3, "batch_size": 8}
COLUMNS = ("pc", "pw", "pr", "ths")


def job(world: Path, task: str, method: dict, seed: int) -> dict:
    data = world / "data" / task
    return {
        "model": str(world / "model"),
        "task": task,
        "training_dataset": str(data / "train.jsonl"),
        "eval_datasets": {"id": str(data / "test_id.jsonl"), "ood": str(data / "test_ood.jsonl")},
        "method": {**method, **BUDGET},
        "training": TRAINING,
        "seed": seed,
    }


def run_all(world: Path, seeds: list[int], work: Path) -> list[dict]:
    """Every (task, seed, method) run; returns rows {task, seed, method, report, seconds}."""
    rows = []
    for task in TASKS:
        for seed in seeds:
            cache = work / "cache"
            for name, method in METHODS.items():
                started = time.perf_counter()
                config = load_job_config(job(world, task, method, seed))
                report = run_job(config, work / f"{task}-{seed}-{name}", cache)
                seconds = time.perf_counter() - started
                rows.append({"task": task, "seed": seed, "method": name, "report": report,
                             "seconds": seconds})  # fmt: skip
                tuned = report["eval"]["id"]["tuned"]["ths"]
                print(f"{task} seed {seed} {name:<22} THS id {tuned} ({seconds:.0f} s)", flush=True)
    return rows


def spread(values: list[float | None]) -> str:
    """``mean ± sd`` over seeds (sd over n-1), or ``n/a`` when a value is undefined."""
    known = [v for v in values if v is not None]
    if len(known) < len(values) or not known:
        return "n/a"
    sd = statistics.stdev(known) if len(known) > 1 else 0.0
    return f"{statistics.mean(known):.1f} ± {sd:.1f}"


def method_table(rows: list[dict], task: str) -> list[str]:
    """Markdown rows: init_basic, init_refuse, then each method's tuned model."""
    lines = [
        "| model | "
        + " | ".join(f"{s} {c}" for s in ("ID", "OOD") for c in ("Pc", "Pw", "Pr", "THS"))
        + " |",
        "|---|" + "---:|" * 8,
    ]
    mine = [r for r in rows if r["task"] == task]
    entries = [("init_basic", "grait", "init_basic"), ("init_refuse", "grait", "init_refuse")]
    entries += [(name, name, "tuned") for name in METHODS]
    for label, method, model in entries:
        runs = [r["report"]["eval"] for r in mine if r["method"] == method]
        cells = [
            "0 (reference)"
            if (model, column) == ("init_basic", "ths")
            else spread([run[test][model].get(column) for run in runs])
            for test in ("id", "ood")
            for column in COLUMNS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def delta_table(rows: list[dict], task: str, seeds: list[int]) -> list[str]:
    """THS of GRAIT minus THS of cor_rait, per seed and test set (consistency)."""
    lines = ["| seed | ID: grait - cor_rait | OOD: grait - cor_rait |", "|---|---:|---:|"]
    for seed in seeds:
        ths = {
            r["method"]: r["report"]["eval"]
            for r in rows
            if r["task"] == task and r["seed"] == seed and r["method"] in ("grait", "cor_rait")
        }
        cells = [
            f"{ths['grait'][test]['tuned']['ths'] - ths['cor_rait'][test]['tuned']['ths']:+.1f}"
            for test in ("id", "ood")
        ]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def timing_table(rows: list[dict]) -> list[str]:
    """Mean wall seconds per stage and task, over the runs that computed it (not cached)."""
    stages = ("probe", "split", "features", "select", "train", "evaluate")
    lines = ["| task | " + " | ".join(stages) + " | whole job |", "|---|" + "---:|" * 7]
    for task in TASKS:
        cells = []
        for stage in stages:
            times = [
                r["report"]["stages"][stage]["seconds"]
                for r in rows
                if r["task"] == task and stage in r["report"]["stages"]
                and not r["report"]["stages"][stage]["cached"]
            ]  # fmt: skip
            cells.append(f"{statistics.mean(times):.1f}" if times else "-")
        whole = statistics.mean(r["seconds"] for r in rows if r["task"] == task)
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {whole:.1f} |")
    return lines


def write_results(rows: list[dict], seeds: list[int], out: Path, total: float) -> None:
    lines = [
        "# GRAIT vs baselines on the small toy world",
        "",
        f"Produced by `python bench/methods.py` ({len(rows)} runs, seeds {seeds}, "
        f"{total / 60:.1f} minutes on this machine, torch threads {torch.get_num_threads()}).",
        "",
        f"Budget: {BUDGET['n_ik']} answers + {BUDGET['n_idk']} refusals for every method; "
        f"training: LoRA r {TRAINING['lora_r']}, {TRAINING['epochs']} epochs, batch "
        f"{TRAINING['batch_size']}, other knobs at their defaults (METHOD.md). Test sets: "
        "`id` (200 items, the pool's relations) and `ood` (200 items, a relation the pool "
        "never asks about). Rates in percent; mean ± standard deviation over the seeds "
        "(the world is the same; the seed drives probe sampling, selection, LoRA init and "
        "shuffling). THS is against `init_basic` on the same test set.",
        "",
    ]
    for task in TASKS:
        splits = [
            r["report"]["split"] for r in rows if r["task"] == task and r["method"] == "grait"
        ]
        counts = ", ".join(f"{s['n_ik']}/{s['n_idk']}" for s in splits)
        lines += [f"## {task}", "", f"Split at tau 0.5 (ik/idk of {splits[0]['n_pool']}, per "
                  f"seed): {counts}.", ""]  # fmt: skip
        lines += method_table(rows, task) + [""]
        lines += ["Per seed, THS of GRAIT minus THS of cor_rait:", ""]
        lines += delta_table(rows, task, seeds) + [""]
    lines += ["## Wall time per stage (seconds, computed runs only)", ""]
    lines += timing_table(rows) + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    # The raw reports, so every figure can be checked or re-tabulated.
    raw = [{k: r[k] for k in ("task", "seed", "method", "seconds", "report")} for r in rows]
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(HERE).parent / "docs" / "results.md")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    world = ensure_world().root
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grait-methods-") as work:
        rows = run_all(world, args.seeds, Path(work))
    write_results(rows, args.seeds, args.out, time.perf_counter() - started)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
