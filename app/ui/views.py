"""HTML sections of a report, for one job or several overlaid (``JobData`` from the job folder).

The figures come from ``grait_engine.reporting.plots`` and are inlined: as ``<svg>``
(default) or as ``<img>`` with a PNG data URI (``fmt="png"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.ui.html import note, number, section, table, text
from grait_engine.reporting.data import (
    MODELS,
    RESULT_COLUMNS,
    JobData,
    config_differences,
    flatten,
    result_values,
)
from grait_engine.reporting.plots import FIGURES, NOT_AVAILABLE, job_figures, plane_figure
from grait_engine.reporting.render import png_data_uri, svg_text

BAR_WIDTH = 40  # characters of the longest histogram bar


def results_table(jobs: Sequence[JobData]) -> str:
    """Per (job,) test set and model: ``RESULT_COLUMNS`` (Pc, Pw, Pr, THS, THS/Pc0, F1 and,
    with ground truth, refusal on unknown and known items) and the unparsed share."""
    many = len(jobs) > 1
    headers = (["job"] if many else []) + ["test set", "model", "n"]
    headers += [heading for _, heading in RESULT_COLUMNS] + ["unparsed"]
    rows = []
    for job in jobs:
        for test_set, block in (job.report.get("eval") or {}).items():
            for model in MODELS:
                row = block.get(model)
                if not row:
                    continue
                values = result_values(model, row)
                cells = [text(test_set), text(model), text(row.get("n"))]
                cells += [
                    number(values[key], 2 if key == "oracle_share" else 1)
                    for key, _ in RESULT_COLUMNS
                ]
                cells += [number(row.get("unparsed"))]
                rows.append(([text(job.label)] if many else []) + cells)
    offset = 1 if many else 0
    return table(headers, rows, numeric={offset + i for i in range(2, len(headers) - offset)})


def _figure(fig: Any, title: str, fmt: str) -> str:
    """One rendered figure inside ``<figure>``."""
    if fmt == "png":
        return f'<figure><img alt="{text(title)}" src="{png_data_uri(fig)}"></figure>'
    return f'<figure role="img" aria-label="{text(title)}">{svg_text(fig)}</figure>'


def _split_note(jobs: Sequence[JobData]) -> str:
    parts = []
    for job in jobs:
        split = job.report.get("split") or {}
        parts.append(
            f"{job.label}: {split.get('n_ik')} ik / {split.get('n_idk')} idk of "
            f"{split.get('n_pool')} pool items, tau {split.get('tau')}, "
            f"{_knob(job, 'training', 'target_loss', 'mean')} loss over the target tokens"
        )
    return note("; ".join(parts))


def _knob(job: JobData, section: str, name: str, default: str) -> str:
    """A knob of the job's resolved config (report.json); ``default`` for reports written
    before the knob existed."""
    return str((job.config.get(section) or {}).get(name, default))


def _selection_note(jobs: Sequence[JobData]) -> str:
    parts = []
    for job in jobs:
        if job.selection is None:
            parts.append(f"{job.label}: selection {NOT_AVAILABLE}")
            continue
        weights = (job.selection.get("summary") or {}).get("weights") or {}
        weighting = _knob(job, "method", "weighting", "adaptive")
        if weighting == "dynamic":  # selection.json holds the weights the fine-tune began with
            weighting = "dynamic (recomputed while training; at the start)"
        parts.append(
            f"{job.label}: {job.selection.get('variant')} selection, answer features "
            f"{_knob(job, 'features', 'answer_gradient', 'adam')} from "
            f"{_knob(job, 'features', 'checkpoints', '1')} warmup checkpoint(s), "
            f"{len(job.idk_items)} idk items, {weighting} weights min "
            f"{number(weights.get('min'), 2)} mean {number(weights.get('mean'), 2)} "
            f"max {number(weights.get('max'), 2)}"
        )
    return note("; ".join(parts))


def _stages_table(jobs: Sequence[JobData]) -> str:
    rows = [
        [text(job.label), text(stage), number(info.get("seconds"), 2), text(info.get("cached"))]
        for job in jobs
        for stage, info in (job.report.get("stages") or {}).items()
    ]
    return table(["job", "stage", "seconds", "cached"], rows, numeric={2})


def report_sections(jobs: Sequence[JobData], fmt: str = "svg") -> str:
    """The results table and every figure section of ``FIGURES`` for ``jobs``."""
    figures = job_figures(jobs)
    extra = {
        "correctness": _split_note(jobs),
        "weights": _selection_note(jobs),
        "timeline": _stages_table(jobs),
    }
    parts = [section("results", "Results: Pc, Pw, Pr and THS", results_table(jobs))]
    for name, title in FIGURES.items():
        body = _figure(figures[name], title, fmt) + extra.get(name, "")
        parts.append(section(name, title, body))
    return "".join(parts)


def config_table(config: Mapping[str, Any]) -> str:
    """The resolved config, flattened to ``a.b.c`` keys."""
    rows = [[text(key), text(value)] for key, value in sorted(flatten(config).items())]
    return table(["key", "value"], rows) if rows else note("no config recorded")


def differences_table(labels: Sequence[str], configs: Sequence[Mapping[str, Any]]) -> str:
    """The flattened config keys whose values differ between the jobs."""
    rows = [
        [text(key)] + [text(value) for value in values]
        for key, values in config_differences(configs)
    ]
    if not rows:
        return note("the configs are identical")
    return table(["key", *labels], rows)


def knowledge_section(knowledge: Mapping[str, Any]) -> str:
    """A base-model evaluation's knowledge probe: per eval set, the share of items the
    model knows (correctness >= tau) and the correctness histogram as a table of bars."""
    parts = []
    for name, entry in knowledge.items():
        counts = [int(c) for c in entry.get("counts") or []]
        edges = entry.get("bins") or []
        top = max(counts, default=0) or 1
        rows = []
        for index, count in enumerate(counts):
            close = "]" if index == len(counts) - 1 else ")"
            span = f"[{number(edges[index])}, {number(edges[index + 1])}{close}"
            bar = "\u2588" * round(BAR_WIDTH * count / top)
            rows.append([text(span), text(count), f'<span aria-hidden="true">{bar}</span>'])
        summary = (
            f"{name}: {number(entry.get('known_share'))}% of {entry.get('n')} items have "
            f"correctness >= {entry.get('tau')}; mean correctness "
            f"{number(entry.get('mean_correctness'), 3)}"
        )
        if entry.get("auroc_known") is not None:
            summary += f"; AUROC against the ground truth {number(entry['auroc_known'], 3)}"
        parts.append(note(summary) + table(["correctness", "items", ""], rows, numeric={1}))
    return "".join(parts)


def evaluation_sections(job: JobData, fmt: str = "svg") -> str:
    """An evaluation job's report: the results table, the Pc/Pw plane, the knowledge
    probe (base-model evaluations) and the stage timings. Tune-only figures (training
    curves, split, selection weights) are left out: an evaluation has none."""
    plane = plane_figure({job.label: job.report.get("eval") or {}})
    parts = [
        section("results", "Results: Pc, Pw, Pr and THS", results_table([job])),
        section("plane", FIGURES["plane"], _figure(plane, FIGURES["plane"], fmt)),
    ]
    knowledge = job.report.get("knowledge")
    if knowledge:
        title = "What the base model knows: probe correctness per item"
        parts.append(section("knowledge", title, knowledge_section(knowledge)))
    parts.append(section("timeline", "Stage timings", _stages_table([job])))
    return "".join(parts)
