"""A finished job folder (written by ``run_job``) loaded into one small dataclass.

The folder holds ``report.json`` (API.md), ``split.json``, ``selection.json`` (grait only),
``metrics.jsonl`` (training curves), ``adapter/`` and ``eval/<test set>/``. Only
``report.json`` is required; a missing optional file leaves its field ``None`` (or ``{}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grait_engine.job_folder import (
    METRICS_FILE,
    REPORT_FILE,
    SELECTION_FILE,
    SPLIT_FILE,
    read_json,
    read_metrics,
)
from grait_engine.job_folder import read_report as read_report

MODELS = ("init_basic", "init_refuse", "tuned")


@dataclass(frozen=True)
class JobData:
    """What the figures and pages need of one job.

    ``label`` names the job in legends; ``report`` is report.json; ``split`` is split.json
    (or None); ``selection`` is selection.json (None for methods without a selection stage);
    ``metrics`` is ``{"train/loss": [(step, value)], "train/lr": [...]}`` (``{}`` if absent).
    """

    label: str
    report: dict[str, Any]
    split: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """The job's resolved config as report.json records it (``{}`` when it does not)."""
        return dict((self.report.get("job") or {}).get("config") or {})

    @property
    def correctness(self) -> list[float]:
        """The probe's correctness per pool item (``[]`` without split.json)."""
        if not self.split:
            return []
        return [float(c) for c in self.split.get("correctness", {}).values()]

    @property
    def tau(self) -> float | None:
        """The split threshold, from split.json or else the report."""
        source = self.split or self.report.get("split") or {}
        return None if source.get("tau") is None else float(source["tau"])

    @property
    def idk_items(self) -> list[dict[str, Any]]:
        """The selected idk items of selection.json (``[]`` when there is none)."""
        if not self.selection:
            return []
        return [item for item in self.selection.get("items", []) if item.get("role") == "idk"]


def report_ready(job_dir: Path) -> bool:
    """Whether ``job_dir`` holds a readable ``report.json`` (the job finished)."""
    return read_json(job_dir / REPORT_FILE) is not None


def load_job(job_dir: Path, label: str | None = None) -> JobData:
    """Load the job folder ``job_dir``; raises ``FileNotFoundError`` without a report.

    ``label`` defaults to the report's job id, else the folder name. Reads files only.
    """
    report = read_json(job_dir / REPORT_FILE)
    if report is None:
        raise FileNotFoundError(f"no readable {REPORT_FILE} in the job folder")
    if label is None:
        label = str(report.get("job", {}).get("id") or job_dir.name)
    return JobData(
        label=label,
        report=report,
        split=read_json(job_dir / SPLIT_FILE),
        selection=read_json(job_dir / SELECTION_FILE),
        metrics=read_metrics(job_dir / METRICS_FILE),
    )


def ths_by_test_set(report: Mapping[str, Any], model: str = "tuned") -> dict[str, float | None]:
    """``{test set: THS of model}`` from a report (``init_basic`` is 0 by definition)."""
    out: dict[str, float | None] = {}
    for name, block in (report.get("eval") or {}).items():
        row = block.get(model) or {}
        out[name] = 0.0 if model == "init_basic" and row else row.get("ths")
    return out


# The result columns of report tables (report.md, the report page): (key, heading).
RESULT_COLUMNS = (
    ("pc", "Pc"),
    ("pw", "Pw"),
    ("pr", "Pr"),
    ("ths", "THS"),
    ("oracle_share", "THS/Pc0"),
    ("f1", "F1"),
    ("pr_unknown", "Pr unknown"),
    ("pr_known", "Pr known"),
)


def row_metrics(row: Mapping[str, Any]) -> dict[str, float | None]:
    """The ``RESULT_COLUMNS`` values of one report.json ``eval`` row, as recorded: a metric
    the row lacks (THS of ``init_basic``) is None; ``pr_unknown`` (refusal where it is right)
    and ``pr_known`` (over-refusal) come from ``by_known`` when the test items carry
    ``meta.known``, else None."""
    by_known = row.get("by_known") or {}
    values = {key: row.get(key) for key, _ in RESULT_COLUMNS}
    values["pr_unknown"] = (by_known.get("unknown") or {}).get("pr")
    values["pr_known"] = (by_known.get("known") or {}).get("pr")
    return values


def result_values(model: str, row: Mapping[str, Any]) -> dict[str, float | None]:
    """:func:`row_metrics` for a table cell: THS and its oracle share are 0 for
    ``init_basic`` by definition."""
    values = row_metrics(row)
    if model == "init_basic":
        values["ths"], values["oracle_share"] = 0.0, 0.0
    return values


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}`` (lists and scalars are leaves)."""
    if not isinstance(value, Mapping) or (prefix and not value):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(configs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Flattened keys whose values differ between ``configs``: ``[(key, [value per config])]``.

    A key missing from a config shows as None. Sorted by key.
    """
    flat = [flatten(config) for config in configs]
    keys = sorted(set().union(*flat)) if flat else []
    rows = []
    for key in keys:
        values = [f.get(key) for f in flat]
        if any(
            json.dumps(v, sort_keys=True) != json.dumps(values[0], sort_keys=True) for v in values
        ):
            rows.append((key, values))
    return rows
