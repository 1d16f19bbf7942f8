"""``report.json`` and ``report.md`` of one job (API.md), written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from grait_engine.artifacts import atomic_write_json, atomic_write_text

MODELS = ("init_basic", "init_refuse", "tuned")


def weight_summary(weights: list[float]) -> dict[str, float] | None:
    """``{"min", "mean", "max"}`` of the training weights, or None when there are none."""
    if not weights:
        return None
    return {"min": min(weights), "mean": math.fsum(weights) / len(weights), "max": max(weights)}


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f}"


def report_markdown(report: dict[str, Any]) -> str:
    """A readable table of Pc, Pw, Pr and THS per test set and model."""
    job = report["job"]
    lines = [
        f"# GRAIT job report: {job['method']} on {job['model']}",
        "",
        f"task {job['task']}, seed {job['seed']}; split: {report['split']['n_ik']} ik / "
        f"{report['split']['n_idk']} idk of {report['split']['n_pool']} (tau "
        f"{report['split']['tau']}); trained on {report['selection']['n_ik']} answers + "
        f"{report['selection']['n_idk']} refusals.",
        "",
        "| test set | model | n | Pc | Pw | Pr | THS |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, block in report["eval"].items():
        for model in MODELS:
            if model not in block:
                continue
            row = block[model]
            ths = 0.0 if model == "init_basic" else row.get("ths")
            cells = [_cell(row.get(k)) for k in ("pc", "pw", "pr")] + [_cell(ths)]
            lines.append(f"| {name} | {model} | {row['n']} | " + " | ".join(cells) + " |")
    lines += ["", "| stage | seconds | cached |", "|---|---:|---|"]
    for stage, info in report["stages"].items():
        lines.append(f"| {stage} | {info['seconds']:.1f} | {info['cached']} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    """Write ``out_dir/report.json`` and ``out_dir/report.md`` atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", report_markdown(report))
