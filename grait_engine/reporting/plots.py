"""One matplotlib ``Figure`` per view of a job report; each takes plain data for one or more
jobs, keyed by a job label, and overlays them (the compare view passes several).

Figures are made with ``matplotlib.figure.Figure`` directly, never ``pyplot``: no global
figure registry to leak, and no GUI backend (``render`` draws them with Agg). A view with
no data for any job draws a short "not available" note instead of empty axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from grait_engine.reporting.data import JobData

# figure name -> title (the file name of ``plots/<name>.png`` and the page's section title)
FIGURES = {
    "plane": "Pc/Pw plane",
    "curves": "Training loss and learning rate",
    "correctness": "Probe correctness and split threshold",
    "weights": "Refusal (idk) weights",
    "timeline": "Stage timeline",
}
MARKERS = {"init_basic": "o", "init_refuse": "s", "tuned": "*"}
NOT_AVAILABLE = "not available for this method"


def _plain(label: str) -> str:
    """``label`` with ``$`` escaped, so names from configs never switch on mathtext."""
    return str(label).replace("$", r"\$")


def _color(index: int) -> str:
    return f"C{index % 10}"


def _note(ax: Axes, text: str = NOT_AVAILABLE) -> None:
    """Replace the axes' content by a centred note."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plane_figure(evals: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Pc (correct %, y) against Pw (wrong %, x) for ``{label: report["eval"]}``.

    Per job and test set: the base model with the basic (circle) and refuse (square) prompt
    and the tuned model (star, annotated with its THS), and the THS = 0 line through the
    origin and the base point (Pc = Pw * Pc0 / Pw0): THS is the height above that line.
    The ideal point (Pw 0, Pc 100) is marked.
    """
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    index = 0
    for label, blocks in evals.items():
        for test_set, block in blocks.items():
            name = f"{label} {test_set}" if len(evals) > 1 else str(test_set)
            _plane_series(ax, _plain(name), block, index)
            index += 1
    ax.scatter([0], [100], marker="P", s=120, color="gold", edgecolor="k", label="ideal", zorder=5)
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 104)
    ax.set_xlabel("Pw: wrong answers (%)")
    ax.set_ylabel("Pc: correct answers (%)")
    ax.set_title(FIGURES["plane"] + " (dashed: THS = 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _plane_series(ax: Axes, name: str, block: Mapping[str, Any], index: int) -> None:
    """The three models of one test set of one job, in color ``index``."""
    color = _color(index)
    for model, marker in MARKERS.items():
        row = block.get(model)
        if not row:
            continue
        size = 160 if model == "tuned" else 50
        ax.scatter(
            [row["pw"]],
            [row["pc"]],
            marker=marker,
            s=size,
            color=color,
            edgecolor="k",
            label=f"{name} {model}",
            zorder=4,
        )
        if model == "tuned" and row.get("ths") is not None:
            ax.annotate(
                f"THS {row['ths']:.1f}",
                (row["pw"], row["pc"]),
                fontsize=7,
                xytext=(6, 4),
                textcoords="offset points",
                color=color,
            )
    base = block.get("init_basic")
    if base and base.get("pw"):
        slope = base["pc"] / base["pw"]
        end = min(100.0, 100.0 / slope) if slope > 0 else 100.0
        ax.plot([0, end], [0, end * slope], linestyle="--", color=color, linewidth=1)


def curves_figure(metrics: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]]) -> Figure:
    """Training loss (left) and learning rate (right) by step for ``{label: metrics}``."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, name, title in zip(
        axes, ("train/loss", "train/lr"), ("loss", "learning rate"), strict=True
    ):
        drawn = False
        for index, (label, series) in enumerate(metrics.items()):
            points = series.get(name) or []
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker=".", color=_color(index), label=_plain(label))
                drawn = True
        if not drawn:
            _note(ax, "no training curves recorded")
            continue
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(metrics) > 1:
            ax.legend(fontsize=7)
    return fig


def correctness_figure(splits: Mapping[str, tuple[Sequence[float], float | None]]) -> Figure:
    """Histogram of the probe's per-item correctness with the split threshold ``tau``.

    ``splits``: ``{label: (correctness values in [0, 1], tau)}``; items at or above tau
    are "I know" (ik), the rest "I don't know" (idk).
    """
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if not any(values for values, _ in splits.values()):
        _note(ax, "no probe split recorded")
        return fig
    bins = [i / 20 for i in range(21)]
    for index, (label, (values, tau)) in enumerate(splits.items()):
        color = _color(index)
        ax.hist(
            list(values),
            bins=bins,
            histtype="step",
            linewidth=1.5,
            color=color,
            label=_plain(label),
        )
        if tau is not None:
            ax.axvline(tau, color=color, linestyle="--", label=f"tau {tau:g}")
    ax.set_xlabel("probe correctness")
    ax.set_ylabel("items")
    ax.set_title(FIGURES["correctness"])
    ax.legend(fontsize=7)
    return fig


def weights_figure(idk_items: Mapping[str, Sequence[Mapping[str, Any]] | None]) -> Figure:
    """Histogram of idk weights (left) and selection score vs weight (right).

    ``idk_items``: ``{label: selection.json's idk items, or None without a selection}``.
    Items with a null score (random selection) are left out of the scatter.
    """
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    available = {label: list(items) for label, items in idk_items.items() if items}
    if not available:
        _note(left)
        _note(right)
        return fig
    scattered = False
    for index, (label, items) in enumerate(available.items()):
        color = _color(index)
        weights = [float(item["weight"]) for item in items]
        left.hist(
            weights, bins=20, histtype="step", linewidth=1.5, color=color, label=_plain(label)
        )
        scored = [item for item in items if item.get("score") is not None]
        if scored:
            right.scatter(
                [i["score"] for i in scored],
                [i["weight"] for i in scored],
                s=14,
                color=color,
                alpha=0.7,
                label=_plain(label),
            )
            scattered = True
    left.set_xlabel("weight")
    left.set_ylabel("idk items")
    left.set_title("idk weight distribution")
    if scattered:
        right.set_xlabel("selection score")
        right.set_ylabel("weight")
        right.set_title("selected idk items: score vs weight")
        right.grid(alpha=0.3)
    else:
        _note(right, "no selection scores (random selection)")
    if len(available) > 1:
        left.legend(fontsize=7)
    return fig


def timeline_figure(stages: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Figure:
    """Horizontal bars of wall seconds per stage, laid end to end, for ``{label: stages}``.

    Computed stages are solid; stages reused from the cache are grey and hatched.
    """
    rows = [(label, stage, info) for label, job in stages.items() for stage, info in job.items()]
    fig = Figure(figsize=(7.5, 1.2 + 0.35 * max(len(rows), 1)), layout="constrained")
    ax = fig.add_subplot()
    if not rows:
        _note(ax, "no stage timings recorded")
        return fig
    start: dict[str, float] = {}
    for y, (label, _stage, info) in enumerate(rows):
        seconds, cached = float(info.get("seconds") or 0.0), bool(info.get("cached"))
        left = start.get(label, 0.0)
        ax.barh(
            y,
            seconds,
            left=left,
            color="0.75" if cached else "C0",
            hatch="//" if cached else None,
            edgecolor="k",
            linewidth=0.5,
        )
        ax.text(left + seconds, y, f" {seconds:.1f}s", va="center", fontsize=7)
        start[label] = left + seconds
    names = [_plain(f"{label}: {stage}" if len(stages) > 1 else stage) for label, stage, _ in rows]
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("wall seconds")
    ax.set_title(FIGURES["timeline"])
    ax.legend(
        handles=[
            Patch(facecolor="C0", edgecolor="k", label="computed"),
            Patch(facecolor="0.75", hatch="//", edgecolor="k", label="cached"),
        ],
        fontsize=7,
        loc="lower right",
    )
    return fig


def job_figures(jobs: Sequence[JobData]) -> dict[str, Figure]:
    """Every figure of ``FIGURES`` for ``jobs`` (one job, or several overlaid)."""
    return {
        "plane": plane_figure({job.label: job.report.get("eval") or {} for job in jobs}),
        "curves": curves_figure({job.label: job.metrics for job in jobs}),
        "correctness": correctness_figure({job.label: (job.correctness, job.tau) for job in jobs}),
        "weights": weights_figure(
            {job.label: job.idk_items if job.selection else None for job in jobs}
        ),
        "timeline": timeline_figure({job.label: job.report.get("stages") or {} for job in jobs}),
    }
