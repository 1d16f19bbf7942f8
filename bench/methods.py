"""GRAIT against its baselines, ablations and the no-gradient control on toy worlds.

For each task type, world seed and training seed it runs every method with one budget
``n_ik + n_idk`` and one training recipe, then writes ``docs/results.md`` (tables of mean ±
sd per method, per world and pooled, and GRAIT's THS differences to each baseline with
paired-bootstrap 95% CIs) and ``docs/results.json`` (raw reports, ``summary`` and ``deltas``).
The statistics live in ``grait_engine.reporting.compare``.

Methods: ``van``, ``cor_rait``, ``corcer_rait``, ``craft``, ``grait`` (the shipped default:
``variant: stratified``), the paper's GRAIT (``grait_paper``: ``variant: greedy``), GRAIT
without selection (``variant: random``), without weighting (``weighting: none``), with the released
code's weighting (``sign: +1, mean_weight: 0.5``) and the no-gradient control (GRAIT's ik
set, random idk items, unit weights: ``variant: random, weighting: none``). The base
model's rows (``init_basic``, ``init_refuse``) come from the same runs. Probe and features
are computed once per (world, task, seed) and reused by every method (content-addressed
stage cache in ``--work``); a rerun with the same ``--work`` reuses finished jobs.

``--split test`` evaluates on ``test_id`` / ``test_ood``; ``--split val`` on ``val`` /
``val_ood`` (the medium world's validation splits, for choosing the recipe). Worlds are
read from (or built into, 15-25 minutes each for medium) ``--worlds-dir``, by default
``$GRAIT_CACHE_DIR/toyworld`` (``~/.cache/grait/toyworld``), as ``<size>-seed<N>``.

Usage::

    .venv/bin/python bench/methods.py [--size medium] [--worlds 0 1 2] [--seeds 0 1 2] \\
        [--tasks choice open] [--methods ...] [--split test|val] \\
        [--lr LR] [--epochs E] [--lora-r R] [--n-ik N] [--n-idk N] [--features-dim D] \\
        [--shots none|val] [--device cpu|cuda] [--threads 1] [--work DIR] \\
        [--out docs/results.md] [--json docs/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from grait_cli.progress import ProgressBars
from grait_engine.pipeline.config import load_job_config
from grait_engine.pipeline.run import run_job
from grait_engine.reporting.compare import (
    Difference,
    Stat,
    paired_run,
    read_labels,
    summary_row,
    ths_difference,
)
from grait_engine.toyworld import SIZES, ToyWorld, build_toyworld, preset
from grait_engine.toyworld.cache import default_cache_dir

HERE = os.path.dirname(os.path.abspath(__file__))

ROOT = Path(HERE).parent
# key -> (table label, method block without the budget)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "van": ("van", {"type": "van"}),
    "cor_rait": ("cor_rait", {"type": "cor_rait"}),
    "corcer_rait": ("corcer_rait", {"type": "corcer_rait"}),
    "craft": ("craft", {"type": "craft"}),
    "grait": ("grait", {"type": "grait"}),
    "grait_no_selection": ("grait, no selection", {"type": "grait", "variant": "random"}),
    # The paper's GRAIT (METHOD.md's greedy): the shipped default runs it within strata.
    "grait_paper": ("grait, paper (greedy)", {"type": "grait", "variant": "greedy"}),
    "grait_no_weighting": ("grait, no weighting", {"type": "grait", "weighting": "none"}),
    "grait_released_sign": (
        "grait, released sign",
        {"type": "grait", "sign": 1, "mean_weight": 0.5},
    ),
    # What the gradients add: GRAIT's ik set (top by correctness), random idk, unit weights.
    "no_gradient": (
        "no-gradient control",
        {"type": "grait", "variant": "random", "weighting": "none"},
    ),
}
BASE_MODELS = ("init_basic", "init_refuse")
TESTS = ("id", "ood")
SPLIT_FILES = {"test": {"id": "test_id", "ood": "test_ood"}, "val": {"id": "val", "ood": "val_ood"}}
# Table columns: (summary metric, header); rates in percent, oracle share a ratio.
COLUMNS = (("pc", "Pc"), ("pw", "Pw"), ("pr", "Pr"), ("ths", "THS"),
           ("oracle_share", "oracle share"), ("f1", "F1"), ("pr_unknown", "Pr unknown"),
           ("pr_known", "Pr known"))  # fmt: skip


class BenchError(Exception):
    """A bad combination of arguments (printed without a traceback)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="medium", help="toy world size")
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2], help="world seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="job seeds")
    parser.add_argument(
        "--tasks", nargs="+", choices=("choice", "open"), default=["choice", "open"]
    )
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--split", choices=tuple(SPLIT_FILES), default="test",
                        help="test: test_id/test_ood; val: val/val_ood (choosing the recipe)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results.json")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    parser.add_argument("--device", default="cpu", help="the jobs' device (cpu, cuda)")
    recipe = parser.add_argument_group("recipe (default: the engine's defaults)")
    recipe.add_argument("--lr", type=float, help="training learning rate")
    recipe.add_argument("--epochs", type=int, help="training epochs")
    recipe.add_argument("--lora-r", type=int, help="training LoRA rank")
    recipe.add_argument("--n-ik", type=int, help="answers in the training set")
    recipe.add_argument("--n-idk", type=int, help="refusals in the training set")
    recipe.add_argument("--features-dim", type=int, help="gradient feature dimension")
    recipe.add_argument("--shots", choices=("none", "val"), default="none",
                        help="probe few-shot examples: none (0-shot) or the world's val split")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None,
                        help="job folders and stage cache (default: a temp dir; reuse resumes)")  # fmt: skip
    parser.add_argument("--worlds-dir", type=Path, default=None,
                        help="folder of <size>-seed<N> worlds (default: $GRAIT_CACHE_DIR/toyworld)")  # fmt: skip
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    return parser.parse_args(argv)


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The job sections the recipe knobs set; a knob not given keeps the engine's default."""
    budget = {k: v for k, v in (("n_ik", args.n_ik), ("n_idk", args.n_idk)) if v is not None}
    knobs = (("lr", args.lr), ("epochs", args.epochs), ("lora_r", args.lora_r))
    training = {k: v for k, v in knobs if v is not None}
    features = {"dim": args.features_dim} if args.features_dim is not None else {}
    return {"budget": budget, "training": training, "features": features, "shots": args.shots}


def load_world(size: str, seed: int, worlds_dir: Path | None) -> ToyWorld:
    """The toy world of ``size`` and ``seed`` in ``worlds_dir/<size>-seed<seed>``, built there
    with progress bars when missing (a medium world takes 15-25 minutes on one thread)."""
    folder = (worlds_dir or default_cache_dir() / "toyworld") / f"{size}-seed{seed}"
    with ProgressBars() as bars:
        return build_toyworld(preset(size, seed), folder, progress=bars.update)


def eval_paths(world: ToyWorld, task: str, split: str, size: str) -> dict[str, str]:
    """The test sets ``{"id": path, "ood": path}`` of ``split``; BenchError when missing."""
    paths = {test: world.data_path(task, name) for test, name in SPLIT_FILES[split].items()}
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        raise BenchError(
            f"the {size} world (in {world.root}) has no {' / '.join(missing)} for {task}: "
            f"--split {split} needs a world with validation splits (--size medium)"
        )
    return {test: str(path) for test, path in paths.items()}


def job_config(world: ToyWorld, task: str, method: dict, seed: int, args: argparse.Namespace,
               evals: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """The job dict of one run (``load_job_config`` input)."""
    knobs = recipe(args)
    job: dict[str, Any] = {
        "model": str(world.model_dir),
        "task": task,
        "training_dataset": str(world.data_path(task, "train")),
        "eval_datasets": evals,
        "method": {**method, **knobs["budget"]},
        "training": knobs["training"],
        "features": knobs["features"],
        "seed": seed,
        "device": args.device,
    }
    if args.shots == "val":
        job["shots_dataset"] = str(world.data_path(task, "val"))
    return job


def run_one(job: dict[str, Any], out_dir: Path, cache: Path) -> tuple[dict[str, Any], bool]:
    """Run a job into ``out_dir``, or reuse the report already there when it was written for
    the same resolved config (resuming a ``--work`` folder). Returns (report, reused)."""
    config = load_job_config(job)
    previous = out_dir / "report.json"
    if previous.exists():
        report = json.loads(previous.read_text())
        if report["job"]["config"] == json.loads(json.dumps(config.resolved())):
            return report, True
    return run_job(config, out_dir, cache), False


def run_all(args: argparse.Namespace, worlds: dict[int, ToyWorld], work: Path) -> list[dict]:
    """Every (task, world, seed, method) run; rows ``{task, world, seed, method, seconds,
    reused, job_dir, report}``."""
    rows = []
    for task in args.tasks:
        for w, world in worlds.items():
            evals = eval_paths(world, task, args.split, args.size)
            for seed in args.seeds:
                for key in args.methods:
                    job = job_config(world, task, METHODS[key][1], seed, args, evals)
                    out_dir = work / "jobs" / f"{task}-w{w}-s{seed}-{key}"
                    started = time.perf_counter()
                    report, reused = run_one(job, out_dir, work / "cache")
                    seconds = time.perf_counter() - started
                    rows.append({"task": task, "world": w, "seed": seed, "method": key,
                                 "seconds": seconds, "reused": reused, "job_dir": out_dir,
                                 "report": report})  # fmt: skip
                    ths = [report["eval"][t]["tuned"]["ths"] for t in TESTS]
                    note = " (reused)" if reused else ""
                    print(f"{task} world {w} seed {seed} {key:<20} THS id {fmt(ths[0])} "
                          f"ood {fmt(ths[1])} ({seconds:.0f} s){note}", flush=True)  # fmt: skip
    return rows


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# --- statistics -----------------------------------------------------------------------


def model_results(rows: list[dict], task: str, test: str, model: str, world: int | None = None
                  ) -> list[dict]:  # fmt: skip
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


def summaries(rows: list[dict], tasks: list[str], world: int | None = None
              ) -> dict[str, dict[str, dict[str, dict[str, Stat]]]]:  # fmt: skip
    """``{task: {test: {model: {metric: Stat}}}}`` for init_basic, init_refuse and every
    method run (pooled over worlds, or one ``world``)."""
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
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


def deltas(rows: list[dict], tasks: list[str], n_resamples: int, world: int | None = None
           ) -> dict[str, dict[str, dict[str, Difference]]]:  # fmt: skip
    """``{task: {test: {baseline: Difference}}}``: THS of grait minus each other method run,
    paired-bootstrap 95% CI pooled over the worlds and seeds (or one ``world``)."""
    out: dict[str, dict[str, dict[str, Difference]]] = {}
    runs_of = {(r["task"], r["world"], r["seed"], r["method"]): r for r in rows}
    baselines = [m for m in METHODS if m != "grait" and any(r["method"] == m for r in rows)]
    for task in tasks:
        out[task] = {}
        for test in TESTS:
            out[task][test] = {}
            grait_rows = [
                r for r in rows
                if r["task"] == task and r["method"] == "grait" and world in (None, r["world"])
            ]  # fmt: skip
            for baseline in baselines:
                pairs = []
                for row in grait_rows:
                    other = runs_of.get((task, row["world"], row["seed"], baseline))
                    if other is None:
                        continue
                    pairs.append(paired_run(
                        row["world"], row["seed"],
                        read_labels(row["job_dir"], test, "init_basic"),
                        read_labels(row["job_dir"], test, "tuned"),
                        read_labels(other["job_dir"], test, "tuned"),
                    ))  # fmt: skip
                if pairs:
                    out[task][test][baseline] = ths_difference(pairs, n_resamples)
    return out


# --- writing --------------------------------------------------------------------------


def cell(value: Stat, key: str) -> str:
    """``mean ± sd`` (oracle share with two decimals), ``n/a`` when undefined."""
    if value.mean is None or value.sd is None:
        return "n/a"
    digits = 2 if key == "oracle_share" else 1
    return f"{value.mean:.{digits}f} ± {value.sd:.{digits}f}"


def label(model: str) -> str:
    return METHODS[model][0] if model in METHODS else model


def method_table(summary: dict[str, dict[str, Stat]]) -> list[str]:
    """Markdown rows: one per model (init_basic, init_refuse, then the methods)."""
    lines = ["| model | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for model, row in summary.items():
        cells = [
            "0 (reference)" if (model, key) == ("init_basic", "ths") else cell(row[key], key)
            for key, _ in COLUMNS
        ]
        lines.append(f"| {label(model)} | " + " | ".join(cells) + " |")
    return lines


def interval(diff: Difference) -> str:
    if diff.mean is None:
        return "n/a"
    if diff.ci_low is None or diff.ci_high is None:
        return f"{diff.mean:+.1f}"
    return f"{diff.mean:+.1f} [{diff.ci_low:+.1f}, {diff.ci_high:+.1f}]"


def delta_table(pooled: dict[str, Difference], by_world: dict[int, dict[str, Difference]]
                ) -> list[str]:  # fmt: skip
    """Markdown rows: grait minus each baseline, pooled and per world, with 95% CIs."""
    worlds = list(by_world)
    lines = ["| grait minus | pooled | " + " | ".join(f"world {w}" for w in worlds) + " |",
             "|---|---:|" + "---:|" * len(worlds)]  # fmt: skip
    for baseline, diff in pooled.items():
        cells = [interval(diff)] + [interval(by_world[w][baseline]) for w in worlds]
        lines.append(f"| {label(baseline)} | " + " | ".join(cells) + " |")
    return lines


def machine() -> dict[str, Any]:
    """Where the jobs ran: CPU capability, torch threads, GPU name when the device is one."""
    info: dict[str, Any] = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def world_info(worlds: dict[int, ToyWorld]) -> dict[int, dict[str, Any]]:
    """Per world seed: its folder, known share and the build machine's CPU capability."""
    return {
        w: {
            "root": str(world.root),
            "config_hash": world.config_hash,
            "known_share": world.stats.get("known_share"),
            "build_cpu_capability": world.stats.get("cpu_capability"),
            "sizes": world.stats.get("sizes"),
        }  # fmt: skip
        for w, world in worlds.items()
    }


def write_markdown(path: Path, meta: dict[str, Any], rows: list[dict], args: argparse.Namespace,
                   per_world: dict[int, Any], pooled: Any, pooled_deltas: Any,
                   world_deltas: dict[int, Any]) -> None:  # fmt: skip
    """docs/results.md: header, then per task and test set the pooled table, GRAIT's THS
    differences with CIs and the per-world tables."""
    test_files = SPLIT_FILES[args.split]
    lines = [
        f"# GRAIT vs baselines on the {args.size} toy world ({args.split} split)",
        "",
        f"Produced by `{meta['command']}` in {meta['wall_seconds'] / 60:.1f} minutes "
        "(with building any missing world): "
        f"{len(rows)} jobs, worlds {args.worlds}, training seeds {args.seeds}, device "
        f"{args.device}; machine: CPU capability {meta['machine']['cpu_capability']}, "
        f"torch threads {meta['machine']['torch_threads']}"
        + (f", GPU {meta['machine']['gpu']}" if "gpu" in meta["machine"] else "")
        + ".",
        "",
        f"Recipe, one for every method (given: `{json.dumps(meta['recipe'])}`; the rest are "
        f"the engine's defaults, METHOD.md): {recipe_text(meta['resolved'])}.",
        "",
        "Worlds:",
        "",
    ]
    for w, info in meta["worlds"].items():
        sizes = "; ".join(
            f"{task}: " + ", ".join(f"{split} {n}" for split, n in splits.items())
            for task, splits in (info["sizes"] or {}).items()
        )
        lines.append(f"- world {w}: known share {fmt(info['known_share'], 3)}, built on CPU "
                     f"capability {info['build_cpu_capability']}; items {sizes}")  # fmt: skip
    lines += [
        "",
        f"Test sets: `id` = `{test_files['id']}`, `ood` = `{test_files['ood']}`. Rates in "
        "percent; mean ± sd over runs (world × seed; init rows once per run). THS is against "
        "`init_basic` on the same test set; oracle share = THS / Pc0; Pr unknown / known: "
        "refusal on items whose fact the base model does not / does know (`meta.known`). "
        f"CIs: paired bootstrap over test items ({args.bootstrap} resamples, the same draw "
        "for every seed and both methods of a world), pooled over worlds and seeds.",
        "",
    ]
    for task in args.tasks:
        for test in TESTS:
            lines += [f"## {task}, {test.upper()}", "", "Pooled over worlds and seeds:", ""]
            lines += method_table(pooled[task][test]) + [""]
            if pooled_deltas[task][test]:  # none when grait was not run
                lines += ["THS of grait minus each baseline (mean [95% CI]):", ""]
                lines += delta_table(pooled_deltas[task][test],
                                     {w: d[task][test] for w, d in world_deltas.items()})  # fmt: skip
                lines.append("")
            for w in per_world:
                lines += [f"<details><summary>world {w}</summary>", ""]
                lines += method_table(per_world[w][task][test]) + ["", "</details>", ""]
    lines += ["## Wall time per stage (seconds, computed runs only)", ""]
    lines += timing_table(rows, args.tasks) + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def recipe_text(resolved: dict[str, Any]) -> str:
    """The recipe's main knobs in words, from a report's resolved job config."""
    budget, training = resolved["budget"], resolved["training"]
    return (
        f"budget {budget['n_ik']} answers + {budget['n_idk']} refusals; LoRA r "
        f"{training['lora_r']} (alpha {training['lora_alpha']}), lr {training['lr']}, "
        f"{training['epochs']} epochs, batch {training['batch_size']}; features dim "
        f"{resolved['features']['dim']}"
    )


def timing_table(rows: list[dict], tasks: list[str]) -> list[str]:
    """Mean wall seconds per stage and task over the runs that computed it (not cached or
    reused), and per whole job."""
    stages = ("probe", "split", "features", "select", "rehearse", "reprobe", "train", "evaluate")
    lines = ["| task | " + " | ".join(stages) + " | whole job |",
             "|---|" + "---:|" * (len(stages) + 1)]  # fmt: skip
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        cells = []
        for stage in stages:
            times = [
                r["report"]["stages"][stage]["seconds"] for r in mine
                if not r["report"]["stages"].get(stage, {"cached": True})["cached"]
            ]  # fmt: skip
            cells.append(f"{statistics.mean(times):.1f}" if times else "-")
        whole = [r["seconds"] for r in mine if not r["reused"]]
        cells.append(f"{statistics.mean(whole):.1f}" if whole else "-")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def summary_json(pooled: Any) -> dict[str, Any]:
    """``summary[task][test][model]``: ``<metric>_mean`` / ``<metric>_sd`` for every metric
    (``ths_mean``, ``oracle_share_mean``, ``f1_mean``, ``pr_unknown_mean``...) and ``n_runs``."""
    return {
        task: {
            test: {
                model: {
                    **{
                        f"{k}_{part}": getattr(s, part)
                        for k, s in row.items()
                        for part in ("mean", "sd")
                    },
                    "n_runs": row["pc"].n,
                }  # fmt: skip
                for model, row in models.items()
            }
            for test, models in tests.items()
        }
        for task, tests in pooled.items()
    }


def deltas_json(found: dict[str, dict[str, dict[str, Difference]]]) -> dict[str, Any]:
    """``deltas[task][test][baseline] = {mean, ci_low, ci_high, n_runs, n_resamples}``."""
    return {
        task: {test: {baseline: diff.to_dict() for baseline, diff in diffs.items()}
               for test, diffs in tests.items()}
        for task, tests in found.items()
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    knobs = recipe(args)
    print(f"recipe: {json.dumps(knobs)} (unset knobs: the engine's defaults)", flush=True)
    started = time.perf_counter()
    try:
        worlds = {w: load_world(args.size, w, args.worlds_dir) for w in args.worlds}
        for world in worlds.values():  # fail before any job when a split is missing
            for task in args.tasks:
                eval_paths(world, task, args.split, args.size)
                if args.shots == "val" and not world.data_path(task, "val").exists():
                    raise BenchError(f"the {args.size} world has no val split: --shots val "
                                     "needs a world with validation splits (--size medium)")  # fmt: skip
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grait-methods-") as temp:
        work = args.work or Path(temp)
        rows = run_all(args, worlds, work)
        # Everything that reads per-item predictions runs while the job folders exist.
        pooled = summaries(rows, args.tasks)
        per_world = {w: summaries(rows, args.tasks, w) for w in args.worlds}
        pooled_deltas = deltas(rows, args.tasks, args.bootstrap)
        world_deltas = {w: deltas(rows, args.tasks, args.bootstrap, w) for w in args.worlds}
    resolved_job = rows[0]["report"]["job"]["config"]
    meta = {
        "command": shlex.join(["python", "bench/methods.py", *(argv or sys.argv[1:])]),
        "size": args.size, "split": args.split, "worlds": world_info(worlds),
        "seeds": args.seeds, "tasks": args.tasks, "methods": args.methods,
        "recipe": knobs, "device": args.device, "machine": machine(),
        "resolved": {"budget": {k: resolved_job["method"][k] for k in ("n_ik", "n_idk")},
                     "training": resolved_job["training"],
                     "features": resolved_job["features"]},
        "bootstrap_resamples": args.bootstrap,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    write_markdown(args.out, meta, rows, args, per_world, pooled, pooled_deltas, world_deltas)
    runs = [{k: row[k] for k in ("world", "seed", "task", "method", "seconds", "reused", "report")}
            for row in rows]  # fmt: skip
    document = {
        "meta": meta,
        "runs": runs,
        "summary": summary_json(pooled),
        "deltas": deltas_json(pooled_deltas),
        "deltas_by_world": {w: deltas_json(d) for w, d in world_deltas.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
