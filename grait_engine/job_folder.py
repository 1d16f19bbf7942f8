"""The one owner of a job folder's names and readers (torch-free: engine, service, worker).

A job's folder (``ArtifactStore.job_dir(job_id)`` in the service) holds::

    report.json       the job's result (API.md), served as the job's report
    report.md         the same as Markdown, with plots/*.png linked
    stages.json       {stage: its directory in the stage cache}, written as stages start
    split.json        the probe's correctness per item and the ik/idk split
    selection.json    grait only: the selected items with score and weight
    metrics.jsonl     one {"name", "step", "value"} per line (train/loss, train/lr)
    adapter/          the tuned LoRA in peft format
    eval/<test set>/  the evaluation's predictions per model
    knowledge/        evaluate jobs: the knowledge probe per test set
    answers.json      generate jobs: the answers
    merged/           export jobs: the merged model

The same names are used inside the stage cache's directories (``split.json`` in the split
stage, ``adapter/``, ``merged/`` and ``checkpoints/step-NNNNNN`` in the train stage).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPORT_FILE = "report.json"
REPORT_MD_FILE = "report.md"
STAGES_FILE = "stages.json"
SPLIT_FILE = "split.json"
SELECTION_FILE = "selection.json"
METRICS_FILE = "metrics.jsonl"
ANSWERS_FILE = "answers.json"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
KNOWLEDGE_DIR = "knowledge"
EVAL_DIR = "eval"
CHECKPOINTS_DIR = "checkpoints"
# A training checkpoint's directory name: checkpoint_name(step); the step is group 1.
CHECKPOINT_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_name(step: int) -> str:
    """The directory name of the checkpoint at ``step`` (``step-000050``)."""
    return f"step-{step:06d}"


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_report(folder: Path) -> dict[str, Any] | None:
    """``folder/report.json`` as a dict, or None when the job has no readable report."""
    return read_json(folder / REPORT_FILE)


def read_stages(folder: Path) -> dict[str, str]:
    """``folder/stages.json``: ``{stage: its stage-cache directory}`` (``{}`` when absent)."""
    return {str(k): str(v) for k, v in (read_json(folder / STAGES_FILE) or {}).items()}


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value), ...]}`` sorted by step, last value kept per (name, step).

    ``path`` is a ``metrics.jsonl``; a resumed run repeats the steps after its checkpoint,
    hence the last value wins. A missing file gives ``{}``; a torn last line (the process
    died mid-write) is skipped.
    """
    latest: dict[tuple[str, int], float] = {}
    if not path.is_file():
        return {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row: dict[str, Any] = json.loads(line)
            latest[(str(row["name"]), int(row["step"]))] = float(row["value"])
        except (ValueError, KeyError, TypeError):
            continue
    series: dict[str, list[tuple[int, float]]] = {}
    for (name, step), value in sorted(latest.items()):
        series.setdefault(name, []).append((step, value))
    return series
