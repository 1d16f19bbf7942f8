"""A job's files as the API shows them: artifacts, checkpoints and the report.

Every path comes from the server: the job's folder is ``ArtifactStore.job_dir`` (the id
is server-generated), artifact names are produced by listing that folder, and a requested
name is served only if it is one of the listed names (compared as strings), so client text
never becomes a path. Checkpoints are read from the training stage directory that the job
recorded in ``stages.json``; only their names and steps are shown. File names and readers
come from ``grait_engine.job_folder``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.storage import ArtifactStore
from grait_engine.job_folder import (
    CHECKPOINT_NAME,
    CHECKPOINTS_DIR,
    STAGES_FILE,
    read_stages,
)
from grait_engine.job_folder import read_report as read_report_file

# A listed artifact name: path segments of safe characters, no leading dot, no "..".
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
MAX_NAME = 255


def list_artifacts(store: ArtifactStore, job_id: str) -> dict[str, Path]:
    """``{name: path}`` of every file of the job's folder (hidden and temp files left out)."""
    root = store.job_dir(job_id)
    if not root.is_dir():
        return {}
    found = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and NAME.match(name) and name != STAGES_FILE:
            found[name] = path
    return found


def artifact_path(store: ArtifactStore, job_id: str, name: str) -> Path | None:
    """The file of artifact ``name``, or None (also for any name that is not well formed)."""
    if len(name) > MAX_NAME or not NAME.match(name):
        return None
    return list_artifacts(store, job_id).get(name)


def read_report(store: ArtifactStore, job_id: str) -> dict[str, Any] | None:
    """The job's ``report.json``, or None when it has no readable report."""
    return read_report_file(store.job_dir(job_id))


def list_checkpoints(store: ArtifactStore, job_id: str) -> list[dict[str, Any]]:
    """``[{name, step, created_at}]`` of the training checkpoints kept so far, oldest first."""
    train = read_stages(store.job_dir(job_id)).get("train")
    base = Path(train) / CHECKPOINTS_DIR if train else None
    if base is None or not base.is_dir():
        return []
    out = []
    for path in sorted(base.iterdir()):
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_dir():
            created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            out.append({"name": path.name, "step": int(match.group(1)), "created_at": created})
    return out
