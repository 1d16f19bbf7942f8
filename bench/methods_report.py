"""The results files of ``bench/methods.py``: ``docs/results.md`` (tables) and the
``summary`` / ``deltas`` parts of ``docs/results.json``.

Formatting: it takes the statistics ``methods_stats`` computed (``Stat`` per metric,
``Difference`` per baseline) and the method labels, and writes text; ``machine`` and
``world_info`` describe where the runs happened for the header. It runs no jobs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from grait_engine.machine import machine_facts
from grait_engine.reporting.compare import Difference, Stat
from grait_engine.toyworld import ToyWorld

TESTS = ("id", "ood")
SPLIT_FILES = {"test": {"id": "test_id", "ood": "test_ood"}, "val": {"id": "val", "ood": "val_ood"}}
# Table columns: (summary metric, header); rates in percent, oracle share a ratio.
COLUMNS = (
    ("pc", "Pc"),
    ("pw", "Pw"),
    ("pr", "Pr"),
    ("ths", "THS"),
    ("oracle_share", "oracle share"),
    ("f1", "F1"),
    ("pr_unknown", "Pr unknown"),
    ("pr_known", "Pr known"),
)


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def cell(value: Stat, key: str) -> str:
    """``mean ± sd`` (oracle share with two decimals), ``n/a`` when undefined."""
    if value.mean is None or value.sd is None:
        return "n/a"
    digits = 2 if key == "oracle_share" else 1
    return f"{value.mean:.{digits}f} ± {value.sd:.{digits}f}"


def label(model: str, labels: Mapping[str, str]) -> str:
    return labels.get(model, model)


def method_table(summary: dict[str, dict[str, Stat]], labels: Mapping[str, str]) -> list[str]:
    """Markdown rows: one per model (init_basic, init_refuse, then the methods), each named
    by ``labels`` (method key -> table label)."""
    lines = [
        "| model | " + " | ".join(h for _, h in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for model, row in summary.items():
        cells = [
            "0 (reference)" if (model, key) == ("init_basic", "ths") else cell(row[key], key)
            for key, _ in COLUMNS
        ]
        lines.append(f"| {label(model, labels)} | " + " | ".join(cells) + " |")
    return lines


def interval(diff: Difference) -> str:
    if diff.mean is None:
        return "n/a"
    if diff.ci_low is None or diff.ci_high is None:
        return f"{diff.mean:+.1f}"
    return f"{diff.mean:+.1f} [{diff.ci_low:+.1f}, {diff.ci_high:+.1f}]"


def delta_table(
    pooled: dict[str, Difference],
    by_world: dict[int, dict[str, Difference]],
    labels: Mapping[str, str],
) -> list[str]:
    """Markdown rows: grait minus each baseline, pooled and per world, with 95% CIs."""
    worlds = list(by_world)
    lines = [
        "| grait minus | pooled | " + " | ".join(f"world {w}" for w in worlds) + " |",
        "|---|---:|" + "---:|" * len(worlds),
    ]
    for baseline, diff in pooled.items():
        cells = [interval(diff)] + [interval(by_world[w][baseline]) for w in worlds]
        lines.append(f"| {label(baseline, labels)} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(
    path: Path,
    meta: dict[str, Any],
    rows: list[dict],
    args: argparse.Namespace,
    labels: Mapping[str, str],
    per_world: dict[int, Any],
    pooled: Any,
    pooled_deltas: Any,
    world_deltas: dict[int, Any],
) -> None:
    """docs/results.md: header, then per task and test set the pooled table, GRAIT's THS
    differences with CIs and the per-world tables (``labels``: method key -> table label)."""
    test_files = SPLIT_FILES[args.split]
    lines = [
        f"# GRAIT vs baselines on the {args.size} toy world ({args.split} split)",
        "",
        f"Produced by `{meta['command']}` in {meta['wall_seconds'] / 60:.1f} minutes "
        "(with building any missing world): "
        f"{len(rows)} jobs, worlds {args.worlds}, training seeds {args.seeds}, device "
        f"{args.device}; machine: CPU capability {meta['machine']['cpu_capability']} "
        f"({meta['machine'].get('cpu_model', 'model not recorded')}), "
        f"torch {meta['machine']['torch']}, torch threads {meta['machine']['torch_threads']}"
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
        lines.append(
            f"- world {w}: version {info.get('version')}, known share "
            f"{fmt(info['known_share'], 3)}, built on CPU "
            f"capability {info['build_cpu_capability']} "
            f"({info.get('build_cpu_model') or 'model not recorded'}); items {sizes}"
        )
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
            lines += method_table(pooled[task][test], labels) + [""]
            if pooled_deltas[task][test]:  # none when grait was not run
                lines += ["THS of grait minus each baseline (mean [95% CI]):", ""]
                by_world = {w: d[task][test] for w, d in world_deltas.items()}
                lines += delta_table(pooled_deltas[task][test], by_world, labels)
                lines.append("")
            for w in per_world:
                lines += [f"<details><summary>world {w}</summary>", ""]
                lines += method_table(per_world[w][task][test], labels) + ["", "</details>", ""]
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
    lines = [
        "| task | " + " | ".join(stages) + " | whole job |",
        "|---|" + "---:|" * (len(stages) + 1),
    ]
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        cells = []
        for stage in stages:
            times = [
                r["report"]["stages"][stage]["seconds"]
                for r in mine
                if not r["report"]["stages"].get(stage, {"cached": True})["cached"]
            ]
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
                }
                for model, row in models.items()
            }
            for test, models in tests.items()
        }
        for task, tests in pooled.items()
    }


def deltas_json(found: dict[str, dict[str, dict[str, Difference]]]) -> dict[str, Any]:
    """``deltas[task][test][baseline] = {mean, ci_low, ci_high, n_runs, n_resamples}``."""
    return {
        task: {
            test: {baseline: diff.to_dict() for baseline, diff in diffs.items()}
            for test, diffs in tests.items()
        }
        for task, tests in found.items()
    }


def machine() -> dict[str, Any]:
    """Where the jobs ran: CPU capability and model, torch version and threads, GPU name
    when the device is one."""
    info = machine_facts()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def world_info(worlds: dict[int, ToyWorld]) -> dict[int, dict[str, Any]]:
    """Per world seed: its folder, generator version (``config.json``; the version also
    fixes how ``known`` is measured), known share and the build machine's CPU capability
    and model (None for worlds built before the model was recorded)."""
    return {
        w: {
            "root": str(world.root),
            "version": json.loads((world.root / "config.json").read_text()).get("version"),
            "config_hash": world.config_hash,
            "known_share": world.stats.get("known_share"),
            "build_cpu_capability": world.stats.get("cpu_capability"),
            "build_cpu_model": world.stats.get("cpu_model"),
            "sizes": world.stats.get("sizes"),
        }
        for w, world in worlds.items()
    }
