"""GRAIT against its baselines, ablations and the no-gradient control on toy worlds.

For each task type, world seed and training seed it runs every method of ``METHODS`` with
one budget ``n_ik + n_idk`` and one training recipe, then writes ``docs/results.md`` and
``docs/results.json`` (``methods_stats`` computes, ``methods_report`` writes). Probe and
features are computed once per (world, task, seed) and shared by every method (the stage
cache in ``--work``); a rerun with the same ``--work`` reuses finished jobs. ``--split val``
evaluates on the medium world's validation splits (for choosing a recipe or a variant).
Worlds are read from, or built into, ``--worlds-dir`` (default
``$GRAIT_CACHE_DIR/toyworld``) as ``<size>-seed<N>``. See docs/benchmarks.md.

Usage::

    .venv/bin/python bench/methods.py [--size medium] [--worlds 0 1 2] [--seeds 0 1 2] \\
        [--tasks choice open] [--methods ...] [--split test|val] [--lr LR] [--epochs E] \\
        [--lora-r R] [--n-ik N] [--n-idk N] [--features-dim D] [--shots none|val] \\
        [--target-loss mean|decision|sum] [--answer-gradient adam|gradient|rms] \\
        [--probe-temperature T] \\
        [--device cpu|cuda] [--threads 1] [--work DIR] [--out FILE.md] [--json FILE.json]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import methods_report as results
import torch
from methods_stats import deltas, summaries

from grait_cli.progress import ProgressBars
from grait_engine.features.config import ANSWER_GRADIENTS
from grait_engine.job_folder import REPORT_FILE
from grait_engine.knobs import TARGET_LOSSES
from grait_engine.pipeline.config import load_job_config
from grait_engine.pipeline.run import run_job
from grait_engine.toyworld import SIZES, ToyWorld, build_toyworld, preset
from grait_engine.toyworld.cache import default_cache_dir

ROOT = Path(__file__).resolve().parent.parent
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
    # Weights recomputed from the adapter being trained at each epoch's start (issue 15).
    "grait_dynamic": ("grait, dynamic weights", {"type": "grait", "weighting": "dynamic"}),
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
    parser.add_argument(
        "--split",
        choices=tuple(results.SPLIT_FILES),
        default="test",
        help="test: test_id/test_ood; val: val/val_ood (choosing the recipe)",
    )
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
    recipe.add_argument(
        "--target-loss", choices=TARGET_LOSSES, help="training loss over target tokens"
    )
    recipe.add_argument(
        "--answer-gradient", choices=ANSWER_GRADIENTS, help="answer-side feature rows"
    )
    recipe.add_argument(
        "--probe-temperature", type=float, help="the open probe's sampling temperature"
    )
    recipe.add_argument("--warmup-epochs", type=int, help="features warmup epochs")
    recipe.add_argument(
        "--feature-checkpoints", type=int, help="warmup epoch-end states the features sum over"
    )
    recipe.add_argument(
        "--shots",
        choices=("none", "val"),
        default="none",
        help="probe few-shot examples: none (0-shot) or the world's val split",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="job folders and stage cache (default: a temp dir; reuse resumes)",
    )
    parser.add_argument(
        "--worlds-dir",
        type=Path,
        default=None,
        help="folder of <size>-seed<N> worlds (default: $GRAIT_CACHE_DIR/toyworld)",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    return parser.parse_args(argv)


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The job sections the recipe knobs set; a knob not given keeps the engine's default."""
    budget = {k: v for k, v in (("n_ik", args.n_ik), ("n_idk", args.n_idk)) if v is not None}
    knobs = (("lr", args.lr), ("epochs", args.epochs), ("lora_r", args.lora_r))
    knobs += (("target_loss", args.target_loss),)
    training = {k: v for k, v in knobs if v is not None}
    features_knobs = (("dim", args.features_dim), ("answer_gradient", args.answer_gradient))
    features_knobs += (("warmup_epochs", args.warmup_epochs),)
    features_knobs += (("checkpoints", args.feature_checkpoints),)
    features = {k: v for k, v in features_knobs if v is not None}
    probe = {"temperature": args.probe_temperature} if args.probe_temperature is not None else {}
    return {
        "budget": budget,
        "training": training,
        "features": features,
        "probe": probe,
        "shots": args.shots,
    }


def load_world(size: str, seed: int, worlds_dir: Path | None) -> ToyWorld:
    """The toy world of ``size`` and ``seed`` in ``worlds_dir/<size>-seed<seed>``, built there
    with progress bars when missing (a medium world takes 15-25 minutes on one thread)."""
    folder = (worlds_dir or default_cache_dir() / "toyworld") / f"{size}-seed{seed}"
    with ProgressBars() as bars:
        return build_toyworld(preset(size, seed), folder, progress=bars.update)


def eval_paths(world: ToyWorld, task: str, split: str, size: str) -> dict[str, str]:
    """The test sets ``{"id": path, "ood": path}`` of ``split``; BenchError when missing."""
    paths = {test: world.data_path(task, name) for test, name in results.SPLIT_FILES[split].items()}
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        raise BenchError(
            f"the {size} world (in {world.root}) has no {' / '.join(missing)} for {task}: "
            f"--split {split} needs a world with validation splits (--size medium)"
        )
    return {test: str(path) for test, path in paths.items()}


def job_config(
    world: ToyWorld,
    task: str,
    method: dict,
    seed: int,
    args: argparse.Namespace,
    evals: dict[str, str],
) -> dict[str, Any]:
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
        "probe": knobs["probe"],
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
    previous = out_dir / REPORT_FILE
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
                    rows.append(
                        {
                            "task": task,
                            "world": w,
                            "seed": seed,
                            "method": key,
                            "seconds": seconds,
                            "reused": reused,
                            "job_dir": out_dir,
                            "report": report,
                        }
                    )
                    ths = [report["eval"][t]["tuned"]["ths"] for t in results.TESTS]
                    note = " (reused)" if reused else ""
                    print(
                        f"{task} world {w} seed {seed} {key:<20} THS id {results.fmt(ths[0])} "
                        f"ood {results.fmt(ths[1])} ({seconds:.0f} s){note}",
                        flush=True,
                    )
    return rows


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
                    raise BenchError(
                        f"the {args.size} world has no val split: --shots val "
                        "needs a world with validation splits (--size medium)"
                    )
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grait-methods-") as temp:
        work = args.work or Path(temp)
        rows = run_all(args, worlds, work)
        # Everything that reads per-item predictions runs while the job folders exist.
        order = list(METHODS)
        pooled = summaries(rows, args.tasks, order)
        per_world = {w: summaries(rows, args.tasks, order, w) for w in args.worlds}
        pooled_deltas = deltas(rows, args.tasks, args.bootstrap, order)
        world_deltas = {w: deltas(rows, args.tasks, args.bootstrap, order, w) for w in args.worlds}
    resolved_job = rows[0]["report"]["job"]["config"]
    meta = {
        "command": shlex.join(["python", "bench/methods.py", *(argv or sys.argv[1:])]),
        "size": args.size,
        "split": args.split,
        "worlds": results.world_info(worlds),
        "seeds": args.seeds,
        "tasks": args.tasks,
        "methods": args.methods,
        "recipe": knobs,
        "device": args.device,
        "machine": results.machine(),
        "resolved": {
            "budget": {k: resolved_job["method"][k] for k in ("n_ik", "n_idk")},
            "training": resolved_job["training"],
            "features": resolved_job["features"],
        },
        "bootstrap_resamples": args.bootstrap,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    labels = {key: label for key, (label, _) in METHODS.items()}
    results.write_markdown(
        args.out, meta, rows, args, labels, per_world, pooled, pooled_deltas, world_deltas
    )
    runs = [
        {k: row[k] for k in ("world", "seed", "task", "method", "seconds", "reused", "report")}
        for row in rows
    ]
    document = {
        "meta": meta,
        "runs": runs,
        "summary": results.summary_json(pooled),
        "deltas": results.deltas_json(pooled_deltas),
        "deltas_by_world": {w: results.deltas_json(d) for w, d in world_deltas.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
