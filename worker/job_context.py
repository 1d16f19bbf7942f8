"""What a job's child reads before its stages and where it writes (job context).

- ``read_job_row``: the job's row once (``JobRow``: kind, stored config, tenant, source
  job, the files and sha256 of the datasets it names); ``JobInputError`` for a missing job
  or a deleted dataset.
- ``JobContext``: what a non-tune job's runner (``execute.KIND_RUNNERS``) gets: the row,
  settings, recorder and compute, its folder, the tenant's stage cache, the base model
  and the source job's adapter.
- ``job_dir``/``stage_cache``: the job's own folder and the tenant's stage cache.
- ``job_model_path``: a local model, an HF id, or ``toyworld/<size>`` built here.
- ``log_compute``: one line in the job's log on where and how it runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.datasets.repository import DatasetRepository
from app.db.models import Job, dataset_refs
from app.db.session import unit_of_work
from app.execution.recorder import JobRecorder
from app.settings import Settings
from app.storage import ArtifactStore
from worker.compute import Compute

log = logging.getLogger(__name__)
TOYWORLD_PREFIX = "toyworld/"


class JobInputError(Exception):
    """A job's input that is gone or unusable (deleted dataset...): ``field``, ``message``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def job_dir(settings: Settings, job_id: str) -> Path:
    """The job's own folder in the artifact store (report, predictions, adapter...)."""
    return ArtifactStore(settings.artifacts).job_dir(job_id)


@dataclasses.dataclass(frozen=True)
class JobRow:
    """What the child reads of a job's row, once: its kind and stored config, the tenant,
    the source job (evaluate/generate/export of a tuned model) and the files of the
    datasets its config names (``{request field: path}``, see ``dataset_refs``) with the
    sha256 each had when it was uploaded and validated (``{request field: sha256}``)."""

    job_id: str
    kind: str
    method: str  # a tune job's method; for other kinds their source job's, or "base"
    tenant_id: str
    config: dict[str, Any]
    source_job_id: str | None
    dataset_paths: dict[str, str]
    dataset_sha256: dict[str, str]

    def eval_paths(self) -> dict[str, Path]:
        """The evaluation sets' files by set name (``eval_datasets.<name>`` fields)."""
        prefix = "eval_datasets."
        paths = self.dataset_paths.items()
        return {f.removeprefix(prefix): Path(p) for f, p in paths if f.startswith(prefix)}


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What a non-tune job's runner gets (``KIND_RUNNERS``). It returns the job's report
    (a dict; ``summarize`` of it becomes the job's ``result``) and writes its files under
    ``out_dir``; progress, cancel checks and notices go through ``recorder``."""

    row: JobRow
    settings: Settings
    recorder: JobRecorder
    compute: Compute

    @property
    def out_dir(self) -> Path:
        """The job's own folder (its artifacts)."""
        return job_dir(self.settings, self.row.job_id)

    @property
    def cache_dir(self) -> Path:
        """The tenant's stage cache (shared with its tune jobs: cached M0 predictions)."""
        return stage_cache(self.settings, self.row.tenant_id)

    def model_path(self) -> str:
        """The local directory (or cached HF id) of the job's base model."""
        return job_model_path(self.row.config["model"], self.settings, self.recorder)

    def source_adapter(self) -> Path | None:
        """The tuned LoRA of the source job (peft format), or None for a base-model job.
        Raises JobInputError when the source job's adapter is gone."""
        if self.row.source_job_id is None:
            return None
        from grait_engine.job_folder import ADAPTER_DIR

        adapter = job_dir(self.settings, self.row.source_job_id) / ADAPTER_DIR
        if not adapter.is_dir():
            raise JobInputError("source_job_id", f"job {self.row.source_job_id} has no adapter")
        return adapter


def stage_cache(settings: Settings, tenant_id: str) -> Path:
    """The tenant's own stage cache (no cross-tenant cache hits: see
    ``worker/execute.py``)."""
    root = settings.stage_cache_dir or settings.data_dir / "cache"
    return root / "tenants" / tenant_id


def log_compute(job_id: str, compute: Compute, runtime: Any, doing: str = "computes") -> None:
    """One line in the job's log file (the child's output): where and how the job runs
    (``doing``: what it does there, e.g. "evaluates the base model")."""
    log.info(
        "job %s %s on device %s, dtype %s, torch threads %d (OMP_NUM_THREADS=%s); "
        "runtime %s, first batch size %d",
        job_id,
        doing,
        compute.device,
        compute.dtype,
        compute.threads,
        os.environ.get("OMP_NUM_THREADS", "unset"),
        json.dumps(runtime.to_dict()),
        runtime.batch_for(compute.device_type),
    )


def read_job_row(factory: sessionmaker[Session], settings: Settings, job_id: str) -> JobRow:
    """The job's row as the child needs it; JobInputError for a missing job or dataset."""
    store = ArtifactStore(settings.artifacts)
    with unit_of_work(factory) as session:
        job = session.get(Job, job_id)  # the claimed job: any tenant's
        if job is None:
            raise JobInputError("job", f"no job {job_id}")
        config = dict(job.config)
        paths, digests = {}, {}
        datasets = DatasetRepository(session, job.tenant_id)
        for field, dataset_id in dataset_refs(config).items():
            dataset = datasets.get(dataset_id)
            if dataset is None:
                raise JobInputError(field, f"dataset {dataset_id} was deleted")
            paths[field] = str(store.resolve(dataset.storage_path))
            digests[field] = dataset.sha256
        return JobRow(
            job.id, job.kind, job.method, job.tenant_id, config, job.source_job_id, paths, digests
        )


def job_model_path(name: str, settings: Settings, recorder: JobRecorder) -> str:
    """A local model directory or HF id; ``toyworld/<size>`` is built (or reused) here."""
    if not name.startswith(TOYWORLD_PREFIX):
        return name
    from grait_engine.toyworld import build_toyworld, preset

    size = name.removeprefix(TOYWORLD_PREFIX)
    root = settings.toyworld_dir or settings.data_dir / "toyworld"

    def progress(step: str, done: int, total: int, message: str) -> None:
        recorder.progress("toyworld", done, total, f"{step}: {message}")

    world = build_toyworld(preset(size, 0), root / f"{size}-seed0", progress=progress)
    return str(world.model_dir)
