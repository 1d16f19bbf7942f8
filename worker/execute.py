"""Run one claimed job's stages in this process and record its outcome (job execution).

Both runners start this in a child process: the service's local runner and the Celery
worker (``worker/child.py`` is the entry point), so GPU memory, crashes and kills stay in
the child. The parent owns the lease and renews it; this process records stage changes,
progress, metrics and the outcome under the same lease owner (``JobRecorder``).

Before the stages, the child sets up torch (``compute.set_up_compute``: threads, device,
dtype), fills the worker's runtime defaults (``GRAIT_BATCH_SIZE``,
``GRAIT_MEMORY_BUDGET_MB``) into what the job left unset, and logs all of these to the
job's log file. Notices of the engine (a batch halved after running out of memory) become
``warning`` events.

Outcomes: ``succeeded`` with the report summary as ``result``; ``cancelled`` when a cancel
was seen at a batch boundary; ``failed`` with an error code for bad settings or inputs
(``invalid_config``: a bad or deleted input, a setting this worker cannot run such as
4-bit quantization without CUDA, a model that cannot be loaded), for a training loss that
became NaN or infinite (``diverged``: lower the learning rate), for a database error that
is not transient (``database_error``: a plain message; the statement and its parameters go
to the job's log file only) and for any other exception of a stage (``stage_error``: type
and message; the traceback goes to the job's log file, never to the database). Retrying
such a failure would fail again, so it is final; only a crash (no outcome recorded) is
retried. A transient database error (a lost connection, a serialization failure) that
outlasts the recorder's retries records nothing: the child exits with
``lease.EXIT_DATABASE_UNAVAILABLE`` and its runner gives the job back to the queue without
using up an attempt.

Stage outputs are cached per tenant (``<stage cache>/tenants/<tenant id>``): a report's
``cached: true`` only ever means that the same tenant computed that stage before, so it
tells nothing about other tenants' jobs (neither does the job's duration).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, dataset_refs
from app.db.repositories import DatasetRepository
from app.db.session import unit_of_work
from app.jobs.public import DATABASE_ERROR_MESSAGE
from app.jobs.recorder import JobRecorder
from app.jobs.states import JobStatus
from app.jobs.transient import is_transient
from app.settings import Settings
from app.storage import ArtifactStore
from worker.compute import Compute, ComputeError, check_quantization, set_up_compute
from worker.tune_config import tune_job_config

log = logging.getLogger(__name__)
TOYWORLD_PREFIX = "toyworld/"
# What execute_job returns when the database stayed unreachable (nothing was recorded).
DATABASE_UNAVAILABLE = "database_unavailable"


class JobInputError(Exception):
    """A job's input that is gone or unusable (deleted dataset...): ``field``, ``message``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def job_dir(settings: Settings, job_id: str) -> Path:
    """The job's own folder in the artifact store (report, predictions, adapter...)."""
    return ArtifactStore(settings.artifacts).job_dir(job_id)


def execute_job(factory: sessionmaker[Session], settings: Settings, job_id: str, owner: str) -> str:
    """Run job ``job_id`` under lease ``owner``; returns the final status recorded, ``lost``
    when the lease was taken away and nothing could be recorded, or
    ``DATABASE_UNAVAILABLE`` when a transient database error outlasted the retries.
    A tune job runs the method's stages (``run_job``); the other kinds run the function
    that ``KIND_RUNNERS`` names. Side effects: sets this process's torch threads and
    current GPU (``set_up_compute``)."""
    recorder = JobRecorder(factory, job_id, owner)
    try:
        compute = set_up_compute(settings)
        row = _job_row(factory, settings, job_id)
        if row.kind == "tune":
            report = _run_tune(row, settings, recorder, compute)
        else:
            context = JobContext(row, settings, recorder, compute)
            report = _kind_runner(row.kind)(context)
    except _cancelled_errors():
        return _outcome(recorder, JobStatus.CANCELLED)
    except _invalid_config_errors() as error:
        return _outcome(recorder, JobStatus.FAILED, error=("invalid_config", str(error)[:2000]))
    except _diverged_errors() as error:
        return _outcome(recorder, JobStatus.FAILED, error=("diverged", str(error)[:2000]))
    except Exception as error:
        traceback.print_exc()
        if is_transient(error):
            log.warning("job %s: the database stayed unreachable; giving it back", job_id)
            return DATABASE_UNAVAILABLE
        return _outcome(recorder, JobStatus.FAILED, error=stage_error(error))
    return _outcome(recorder, JobStatus.SUCCEEDED, result=summarize(report))


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
        return _model_path(self.row.config["model"], self.settings, self.recorder)

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


# kind -> "module:function" taking a JobContext and returning the report (imported when a
# job of that kind runs, so torch loads only in the child).
KIND_RUNNERS: dict[str, str] = {}
KIND_RUNNERS["generate"] = "worker.generate_job:run"
KIND_RUNNERS["export"] = "worker.export_job:run"
KIND_RUNNERS["evaluate"] = "worker.evaluate_job:run"


def _kind_runner(kind: str) -> Any:
    import importlib

    if kind not in KIND_RUNNERS:
        raise JobInputError("kind", f"this worker cannot run {kind} jobs")
    module, _, function = KIND_RUNNERS[kind].partition(":")
    return getattr(importlib.import_module(module), function)


def _run_tune(
    row: JobRow, settings: Settings, recorder: JobRecorder, compute: Compute
) -> dict[str, Any]:
    """The method's stages (``run_job``) for a tune job."""
    from grait_engine.pipeline.run import run_job

    model = _model_path(row.config["model"], settings, recorder)
    config = tune_job_config(row, model, settings, compute)
    check_quantization(config.runtime.quantization, compute)
    log_compute(row.job_id, compute, config.runtime)
    return run_job(
        config,
        job_dir(settings, row.job_id),
        stage_cache(settings, row.tenant_id),
        progress=recorder.progress,
        cancel=recorder.cancel_requested,
        job_id=row.job_id,
        on_metric=recorder.metric,
        notice=recorder.notice,
        on_stage=recorder.on_stage,
    )


def stage_error(error: BaseException) -> tuple[str, str]:
    """The (code, message) a client sees for a stage's unexpected exception: a database
    error (or one caused by it) is ``database_error`` with a plain message, never its SQL
    statement or parameters (those are in the traceback in the job's log file); any other
    is ``stage_error`` with its type and message."""
    link: BaseException | None = error
    while link is not None:
        if isinstance(link, SQLAlchemyError):
            return "database_error", DATABASE_ERROR_MESSAGE
        link = link.__cause__ or link.__context__
    return "stage_error", f"{type(error).__name__}: {error}"[:2000]


def stage_cache(settings: Settings, tenant_id: str) -> Path:
    """The tenant's own stage cache (see the module doc: no cross-tenant cache hits)."""
    root = settings.stage_cache_dir or settings.data_dir / "cache"
    return root / "tenants" / tenant_id


def _outcome(recorder: JobRecorder, status: JobStatus, **details: Any) -> str:
    try:
        recorded = recorder.finish(status, **details)
    except Exception as error:
        if not is_transient(error):
            raise
        log.warning("job %s: database unreachable, outcome not recorded", recorder.job_id)
        return DATABASE_UNAVAILABLE
    return status if recorded else "lost"


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The job's ``result``: the report without the echoed config (that is ``job.config``)."""
    return {key: value for key, value in report.items() if key != "job"}


def _cancelled_errors() -> type[BaseException]:
    """What a stage (or the pipeline between stages) raises after a cancel."""
    from grait_engine.stages import StageCancelled

    return StageCancelled


def _invalid_config_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the job cannot run as set here (the same input would fail again):
    bad settings, deleted inputs, a device or quantization this worker lacks, and a model
    that cannot be loaded (no CUDA for 4-bit, unknown architecture, broken files)."""
    from grait_engine.modeling import ModelLoadError
    from grait_engine.pipeline.config import JobConfigError

    return (JobConfigError, JobInputError, ComputeError, ModelLoadError)


def _diverged_errors() -> tuple[type[BaseException], ...]:
    """A stage whose loss became NaN or infinite (the settings make training diverge)."""
    from grait_engine.errors import Diverged

    return (Diverged,)


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


def _job_row(factory: sessionmaker[Session], settings: Settings, job_id: str) -> JobRow:
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


def _model_path(name: str, settings: Settings, recorder: JobRecorder) -> str:
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
