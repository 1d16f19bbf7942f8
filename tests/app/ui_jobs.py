"""Real job folders for the UI tests: the tiny toy world and two finished jobs, built once.

``finished_jobs(root, world)`` runs, on the session's ``tiny`` toy world, a ``grait`` job and a
``cor_rait`` job (no selection.json) with ``run_job`` on the CPU; ``add_job`` inserts a
succeeded ``Job`` row for a tenant and copies a folder to ``store.root/jobs/<id>``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.db.models import Job
from app.db.session import unit_of_work
from app.db.types import new_id
from tests.tiny_jobs import tiny_job

METHODS = {
    "grait": {"type": "grait", "n_ik": 16, "n_idk": 16, "weighting": "adaptive"},
    "cor_rait": {"type": "cor_rait", "n_ik": 8, "n_idk": 8},
}
DONE = "jobs-done"


def finished_jobs(root: Path, world: Any) -> dict[str, Path]:
    """``{"grait": folder, "cor_rait": folder}`` of two finished jobs under ``root``.

    Built once per ``root``: a later call finds the completion marker and returns at once.

    Side effects: builds the toy world and the stage cache under ``root``; runs torch with
    one thread (the machine is shared and results stay reproducible).
    """
    folders = {name: root / "jobs" / name for name in METHODS}
    if (root / DONE).is_file():  # built earlier in this session (another test module)
        return folders
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from grait_engine.pipeline.config import load_job_config
    from grait_engine.pipeline.run import run_job

    torch.set_num_threads(1)
    for name, method in METHODS.items():
        run_job(load_job_config(tiny_job(world, method)), folders[name], root / "cache")
    (root / DONE).write_text("ok\n")
    return folders


def add_job(app: FastAPI, tenant_id: str, folder: Path | None, status: str = "succeeded") -> str:
    """Insert a job of ``tenant_id`` (copying ``folder`` to its job folder); returns its id."""
    report = json.loads((folder / "report.json").read_text()) if folder else None
    job_id = new_id("job")
    summary = None
    if report is not None and status == "succeeded":
        summary = {"eval": {name: {"tuned": b["tuned"]} for name, b in report["eval"].items()}}
    with unit_of_work(app.state.session_factory) as session:
        session.add(
            Job(
                id=job_id,
                tenant_id=tenant_id,
                status=status,
                model=report["job"]["model"] if report else "toy/tiny",
                method=report["job"]["method"] if report else "grait",
                task="choice",
                config=report["job"]["config"] if report else {"seed": 0},
                result=summary,
            )
        )
    if folder is not None:
        shutil.copytree(folder, app.state.store.root / "jobs" / job_id)
    return job_id
