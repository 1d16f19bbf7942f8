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

What the child reads of the job (its row, a non-tune runner's ``JobContext``, the job's
folder, the tenant's stage cache, the base model) is in ``worker/job_context.py``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.execution.recorder import JobRecorder
from app.execution.transient import is_transient
from app.jobs.public import DATABASE_ERROR_MESSAGE
from app.jobs.states import JobStatus
from app.settings import Settings
from worker.compute import Compute, ComputeError, check_quantization, set_up_compute
from worker.job_context import (
    JobContext,
    JobInputError,
    JobRow,
    job_dir,
    job_model_path,
    log_compute,
    read_job_row,
    stage_cache,
)
from worker.tune_config import tune_job_config

log = logging.getLogger(__name__)
# What execute_job returns when the database stayed unreachable (nothing was recorded).
DATABASE_UNAVAILABLE = "database_unavailable"


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
        row = read_job_row(factory, settings, job_id)
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

    model = job_model_path(row.config["model"], settings, recorder)
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
    from grait_engine.model_files import ModelLoadError
    from grait_engine.pipeline.config import JobConfigError

    return (JobConfigError, JobInputError, ComputeError, ModelLoadError)


def _diverged_errors() -> tuple[type[BaseException], ...]:
    """A stage whose loss became NaN or infinite (the settings make training diverge)."""
    from grait_engine.errors import Diverged

    return (Diverged,)
