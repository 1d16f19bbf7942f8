"""``report.json`` and ``report.md`` of one job (API.md), written atomically, with the
report's figures as ``plots/<name>.png`` (``grait_engine.reporting``) linked from the markdown.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from grait_engine.artifacts import atomic_write_json, atomic_write_text
from grait_engine.job_folder import REPORT_FILE, REPORT_MD_FILE
from grait_engine.reporting.data import MODELS, RESULT_COLUMNS, result_values

log = logging.getLogger(__name__)


def weight_summary(weights: list[float]) -> dict[str, float] | None:
    """``{"min", "mean", "max"}`` of the training weights, or None when there are none."""
    if not weights:
        return None
    return {"min": min(weights), "mean": math.fsum(weights) / len(weights), "max": max(weights)}


def _cell(value: Any, key: str = "") -> str:
    """A table cell: percent rates with one decimal, the oracle share (a ratio) with two."""
    if value is None:
        return "n/a"
    return f"{float(value):.2f}" if key == "oracle_share" else f"{float(value):.1f}"


def rates_table(evals: dict[str, Any]) -> list[str]:
    """Markdown lines of the rates table: a row per (test set, model present) of a report's
    ``eval`` blocks (tune and evaluation reports alike), columns ``RESULT_COLUMNS``."""
    lines = [
        "| test set | model | n | " + " | ".join(h for _, h in RESULT_COLUMNS) + " |",
        "|---|---|---:|" + "---:|" * len(RESULT_COLUMNS),
    ]
    for name, block in evals.items():
        for model in MODELS:
            if model not in block:
                continue
            values = result_values(model, block[model])
            cells = [_cell(values[key], key) for key, _ in RESULT_COLUMNS]
            lines.append(f"| {name} | {model} | {block[model]['n']} | " + " | ".join(cells) + " |")
    return lines


def stages_table(stages: dict[str, Any]) -> list[str]:
    """Markdown lines of the stage timings (a blank line first)."""
    lines = ["", "| stage | seconds | cached |", "|---|---:|---|"]
    for stage, info in stages.items():
        lines.append(f"| {stage} | {info['seconds']:.1f} | {info['cached']} |")
    return lines


def report_markdown(report: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """A readable table of Pc, Pw, Pr and THS per test set and model, the stage timings and,
    when ``plots`` (``{figure name: relative PNG path}``) is given, an image link per figure."""
    job = report["job"]
    lines = [
        f"# GRAIT job report: {job['method']} on {job['model']}",
        "",
        f"task {job['task']}, seed {job['seed']}; split: {report['split']['n_ik']} ik / "
        f"{report['split']['n_idk']} idk of {report['split']['n_pool']} (tau "
        f"{report['split']['tau']}); trained on {report['selection']['n_ik']} answers + "
        f"{report['selection']['n_idk']} refusals.",
        "",
        *rates_table(report["eval"]),
        *stages_table(report["stages"]),
    ]
    lines += _plot_lines(plots)
    return "\n".join(lines) + "\n"


def _plot_lines(plots: dict[str, str] | None) -> list[str]:
    """Markdown sections with one relative image link per figure (nothing when None)."""
    if plots is None:
        return []
    from grait_engine.reporting.plots import FIGURES

    lines: list[str] = ["", "## Figures"]
    for name, path in plots.items():
        title = FIGURES.get(name, name)
        lines += ["", f"### {title}", "", f"![{title}]({path})"]
    return lines


def write_report(out_dir: Path, report: dict[str, Any], *, plots: bool = True) -> None:
    """Write ``out_dir/report.json``, ``out_dir/plots/*.png`` and ``out_dir/report.md``.

    The figures are drawn from the job folder (split.json, selection.json, metrics.jsonl
    when present, see ``grait_engine.reporting``), so call this after those are in place.
    A figure that fails to draw is logged and left out: the job's results still stand.
    Files are written atomically; ``plots=False`` skips the figures.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / REPORT_FILE, report)
    links: dict[str, str] | None = None
    if plots:
        from grait_engine.reporting.files import write_plots

        try:
            links = write_plots(out_dir)
        except Exception:  # a drawing bug must not fail a finished job
            log.exception("could not draw the report's figures")
    atomic_write_text(out_dir / REPORT_MD_FILE, report_markdown(report, links))
