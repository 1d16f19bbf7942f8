"""The report files of an evaluation job (``evaluation_job.run_evaluation``).

``evaluation_markdown`` renders ``report.md`` (the rates table, the knowledge histograms of a
base-only job, stage timings, the figure link); ``write_evaluation_report`` writes
``report.json``, ``plots/plane.png`` and ``report.md`` into the job folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from grait_engine.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text
from grait_engine.job_folder import REPORT_FILE, REPORT_MD_FILE
from grait_engine.pipeline.report import rates_table, stages_table

log = logging.getLogger(__name__)


def evaluation_markdown(report: dict[str, Any], plane: str | None = None) -> str:
    """``report.md`` of an evaluation job: the rates table, the knowledge histograms
    (base-only), stage timings and, when ``plane`` (a relative PNG path) is given, a link."""
    job = report["job"]
    source = job.get("source_job_id")
    what = f"tuned model of job {source}" if source else "base model"
    lines = [
        f"# GRAIT evaluation report: {what} ({job.get('model')})",
        "",
        f"task {job['task']}; eval sets: {', '.join(report['eval'])}.",
        "",
        *rates_table(report["eval"]),
    ]
    for name, entry in (report.get("knowledge") or {}).items():
        lines += [
            "",
            f"## What the base model knows: {name}",
            "",
            f"{entry['known_share']:.1f}% of {entry['n']} items have correctness >= "
            f"{entry['tau']} (mean correctness {entry['mean_correctness']:.3f}).",
            "",
            "| correctness | items |",
            "|---|---:|",
        ]
        edges = entry["bins"]
        for index, count in enumerate(entry["counts"]):
            close = "]" if index == len(entry["counts"]) - 1 else ")"
            lines.append(f"| [{edges[index]:.1f}, {edges[index + 1]:.1f}{close} | {count} |")
    lines += stages_table(report["stages"])
    if plane is not None:
        lines += ["", "## Figures", "", f"![Pc against Pw]({plane})"]
    return "\n".join(lines) + "\n"


def write_evaluation_report(out_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report.json``, ``plots/plane.png`` and ``report.md`` into ``out_dir``
    (atomically). A figure that fails to draw is logged and left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / REPORT_FILE, report)
    plane: str | None = None
    try:
        from grait_engine.reporting.plots import plane_figure
        from grait_engine.reporting.render import png_bytes

        atomic_write_bytes(
            out_dir / "plots" / "plane.png", png_bytes(plane_figure({"": report["eval"]}))
        )
        plane = "plots/plane.png"
    except Exception:  # a drawing bug must not fail a finished job
        log.exception("could not draw the evaluation's figure")
    atomic_write_text(out_dir / REPORT_MD_FILE, evaluation_markdown(report, plane))
