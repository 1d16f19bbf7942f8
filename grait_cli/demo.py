"""``grait demo``: the main job of the project, end to end on the toy knowledge world.

Today it builds (or reuses) the ``small`` toy world, shows what its model knows (greedy
accuracy per frequency class, both task types and prompt styles), then runs the knowledge
probe and the ik/idk split (stages 1-2) on both training pools and shows how well the
probe's correctness separates facts seen many times from facts never seen. It grows into
the full service demo (upload, jobs, reports) as the service lands.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Where toy worlds are cached: ``$GRAIT_CACHE_DIR`` or ``~/.cache/grait``."""
    return Path(os.environ.get("GRAIT_CACHE_DIR") or Path.home() / ".cache" / "grait")


def ensure_world(size: str = "small", seed: int = 0, cache_dir: Path | None = None):
    """The toy world of ``size`` and ``seed`` from the cache, built there (with progress
    bars) when missing. Used by the demo and the benchmarks."""
    from grait_engine.toyworld import build_toyworld, preset
    from grait_engine.toyworld.progress import ProgressBars

    out = (cache_dir or default_cache_dir()) / "toyworld" / f"{size}-seed{seed}"
    with ProgressBars() as bars:
        return build_toyworld(preset(size, seed), out, progress=bars.update)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: ~/.cache/grait")


def run(args: argparse.Namespace) -> int:
    from grait_engine.toyworld.cli import summary

    cache = args.cache_dir or default_cache_dir()
    print(f"== toy knowledge world ({args.size}, seed {args.seed}) in {cache / 'toyworld'}")
    world = ensure_world(args.size, args.seed, cache)
    print("reused from cache" if world.cached else f"built in {world.stats['total_seconds']} s")
    print_knowledge_table(summary(world.stats)["accuracy_percent"])
    print(json.dumps({"model": str(world.model_dir), "data": str(world.root / "data")}, indent=2))
    probe_and_split(world, cache / "stages" / f"{args.size}-seed{args.seed}", args.seed)
    return 0


def probe_and_split(world, stages: Path, seed: int) -> None:
    """Stages 1-2 on both training pools, with a progress bar; prints split and AUROC."""
    from grait_engine.modeling import ModelSpec, load_model
    from grait_engine.probe import auroc, read_probe, run_probe, run_split
    from grait_engine.records.jsonl import read_items
    from grait_engine.toyworld.progress import ProgressBars

    model, tokenizer = load_model(ModelSpec(str(world.model_dir)))
    truth = json.loads(world.truth_path.read_text())
    print(f"\n== knowledge probe and split (tau 0.5), stage outputs in {stages}")
    print(f"{'task':<8}{'pool':>6}{'ik':>6}{'idk':>6}{'AUROC many vs never':>22}{'cached':>8}")
    for task in ("open", "choice"):
        items = read_items(world.data_path(task, "train"), task)
        with ProgressBars() as bars:
            probe = run_probe(
                model, tokenizer, items, stages / f"probe-{task}", seed=seed, progress=bars.update
            )
        split = run_split(probe.directory, stages / f"split-{task}", tau=0.5)
        _, records = read_probe(probe.directory)
        kept = [r for r in records if truth[r["id"]]["class"] in ("many", "never")]
        score = auroc(
            [r["correctness"] for r in kept], [truth[r["id"]]["class"] == "many" for r in kept]
        )
        print(
            f"{task:<8}{split.n_pool:>6}{split.n_ik:>6}{split.n_idk:>6}{score:>22.3f}{str(probe.skipped):>8}"
        )


def print_knowledge_table(rows: dict[str, dict[str, float]]) -> None:
    """Greedy 0-shot accuracy (%) on the training pool by how often the fact was seen."""
    header = (
        f"{'task/prompt':<16}{'seen many':>11}{'seen rarely':>13}{'never seen':>12}{'parsed':>8}"
    )
    print(header)
    print("-" * len(header))
    for key, values in rows.items():
        print(
            f"{key:<16}{values.get('many correct', 0):>11.1f}{values.get('rare correct', 0):>13.1f}"
            f"{values.get('never correct', 0):>12.1f}{values.get('parsed', 0):>8.1f}"
        )
