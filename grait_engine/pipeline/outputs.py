"""A job's own output folder: the files a reader needs without the shared stage cache.

``run_job`` writes the report into ``out_dir`` and copies in, from the content-addressed
stage directories::

    split.json        the probe's correctness per item and the ik/idk split
    selection.json    grait only: the selected items with score and weight
    metrics.jsonl     one {"name", "step", "value"} per line (train/loss, train/lr)
    adapter/          the tuned LoRA in peft format
    stages.json       {stage: its directory in the stage cache}, written as stages start

``metrics.jsonl`` is appended by :class:`MetricLog` in the train stage directory while
training runs; a resumed run repeats steps after its checkpoint, so readers keep the last
value per (name, step) (``job_folder.read_metrics``). The names and readers live in
``grait_engine.job_folder``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from grait_engine.artifacts import atomic_write_text
from grait_engine.job_folder import (
    ADAPTER_DIR,
    METRICS_FILE,
    SELECTION_FILE,
    SPLIT_FILE,
    read_metrics,
)

# stage -> file copied from that stage's directory into the job folder
STAGE_FILES = {"split": SPLIT_FILE, "select": SELECTION_FILE, "train": METRICS_FILE}


class MetricLog:
    """``on_metric(name, step, value)`` that appends a line to ``path``, then forwards."""

    def __init__(self, path: Path, forward: Callable[[str, int, float], None] | None) -> None:
        self.path = path
        self.forward = forward

    def __call__(self, name: str, step: int, value: float) -> None:
        line = json.dumps({"name": name, "step": int(step), "value": float(value)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        if self.forward is not None:
            self.forward(name, step, value)


def copy_job_outputs(stage_dirs: dict[str, Path], out_dir: Path) -> None:
    """Copy the files of ``STAGE_FILES`` and the adapter from the stage dirs to ``out_dir``.

    ``metrics.jsonl`` is rewritten de-duplicated (see ``job_folder.read_metrics``). Files are
    written through a temp file and ``os.replace``; missing sources are skipped.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stage, name in STAGE_FILES.items():
        source = stage_dirs[stage] / name if stage in stage_dirs else None
        if source is None or not source.is_file():
            continue
        if name == METRICS_FILE:
            rows = [
                json.dumps({"name": metric, "step": step, "value": value})
                for metric, points in read_metrics(source).items()
                for step, value in points
            ]
            atomic_write_text(out_dir / name, "".join(row + "\n" for row in rows))
        else:
            temp = out_dir / f".{name}.tmp"
            shutil.copyfile(source, temp)
            os.replace(temp, out_dir / name)
    adapter = stage_dirs["train"] / ADAPTER_DIR if "train" in stage_dirs else None
    if adapter is not None and adapter.is_dir():
        staging = out_dir / f".{ADAPTER_DIR}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(adapter, staging)
        shutil.rmtree(out_dir / ADAPTER_DIR, ignore_errors=True)
        os.replace(staging, out_dir / ADAPTER_DIR)
