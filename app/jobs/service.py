"""Job commands of the API: create (idempotent, any kind: ``add_job``), cancel, retry.

Each runs inside the request's unit of work; the caller enqueues the job after the commit
(a queue message for a row that does not exist yet would be lost or misread). Create and
retry resolve the job's request against the current datasets, settings and limits
(``spec.resolve_job``) and refuse a tenant past its active-job limit (429).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.datasets.repository import DatasetRepository
from app.db.models import JOB_KINDS, Job, dataset_refs
from app.db.types import new_id
from app.errors import Conflict, NotFound
from app.execution import lease
from app.jobs.events import status_event
from app.jobs.limits import check_active_jobs, invalid
from app.jobs.repository import JobRepository
from app.jobs.spec import JobCreate, resolve_job
from app.jobs.states import TERMINAL_STATUSES, JobStatus
from app.jobs.vocabulary import public_config
from app.settings import Settings


def create_job(
    session: Session,
    tenant_id: str,
    body: JobCreate,
    *,
    settings: Settings,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """A new queued tune job, or the job an earlier request with the same key created.

    Returns (job, created). A key reused with a different request is a 409 problem; a bad
    request a 422 naming the field; a tenant with ``max_active_jobs_per_tenant`` active
    jobs a 429 (a replay of an earlier request is answered all the same).
    """
    return add_job(
        session,
        tenant_id,
        kind="tune",
        digest=body.request_sha256(),
        resolve=lambda: resolve_job(session, tenant_id, body, settings),
        settings=settings,
        idempotency_key=idempotency_key,
    )


def add_job(
    session: Session,
    tenant_id: str,
    *,
    kind: str,
    digest: str,
    resolve: Callable[[], dict[str, Any]],
    settings: Settings,
    idempotency_key: str | None,
    source_job: Job | None = None,
) -> tuple[Job, bool]:
    """The one way a job of any kind (``JOB_KINDS``) is queued; returns (job, created).

    ``digest``: sha256 of the request (an ``Idempotency-Key`` replay must match it, else
    409). ``resolve()`` checks the request and returns the config to store and echo (its
    ``model`` and ``task`` fill the columns; 422 problems come from it). ``source_job``:
    the succeeded tune job an evaluate/generate/export job uses; the job's ``method`` is
    then that job's method, and ``base`` for a kind without one. Adds the ``queued`` event;
    the caller enqueues after the commit.
    """
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    jobs = JobRepository(session, tenant_id)
    if idempotency_key is not None:
        earlier = jobs.get_by_idempotency_key(idempotency_key)
        if earlier is not None:
            return _replay(earlier, digest), False
    config = resolve()
    check_active_jobs(session, tenant_id, settings)
    if kind == "tune":
        method = config["method"]["type"]
    else:
        method = source_job.method if source_job is not None else "base"
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        status=JobStatus.QUEUED,
        kind=kind,
        model=config["model"],
        method=method,
        task=config["task"],
        config=config,
        max_attempts=settings.max_attempts,
        idempotency_key=idempotency_key,
        request_sha256=digest,
        source_job_id=source_job.id if source_job else None,
    )
    try:
        with session.begin_nested():
            jobs.add(job)
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its job.
        earlier = jobs.get_by_idempotency_key(idempotency_key or "")
        if earlier is None:
            raise
        return _replay(earlier, digest), False
    status_event(session, job.id, JobStatus.QUEUED, f"{kind} job created")
    return job, True


def succeeded_tune_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's tune job ``job_id`` with a tuned model: 404 for no such job (or another
    tenant's), 409 unless it is a ``tune`` job that ``succeeded`` and left its adapter."""
    job = JobRepository(session, tenant_id).get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    if job.kind != "tune" or job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            f"job {job.id} is a {job.status} {job.kind} job; only a succeeded tune job has a "
            "tuned model"
        )
    return job


def _replay(job: Job, digest: str) -> Job:
    if job.request_sha256 != digest:
        raise Conflict("Idempotency-Key was already used with a different request")
    return job


def cancel_job(session: Session, job: Job) -> Job:
    """Ask a job to stop. Queued: ``cancelled`` now. Running: ``cancelling`` (the runner
    stops at the next batch boundary, then kills it after the grace period). Otherwise
    nothing changes (cancel is idempotent)."""
    lease.request_cancel(session, job.id)
    session.refresh(job)
    return job


def retry_job(session: Session, job: Job, *, settings: Settings) -> Job:
    """A new queued job with the same settings and ``parent_job_id``; 409 unless terminal.

    The stored config is checked again like a new request: for a tune job ``resolve_job``
    (a dataset deleted since, a model no longer served or a setting above today's caps is
    a 422 naming the field), for the other kinds the model, the datasets and the source
    job (``_check_again``). The active-job limit applies (429)."""
    if job.status not in TERMINAL_STATUSES:
        raise Conflict(f"job {job.id} is {job.status}; only a finished job can be retried")
    if job.kind == "tune":
        config = resolve_job(session, job.tenant_id, _request_of(job), settings)
    else:
        config = _check_again(session, job, settings)
    check_active_jobs(session, job.tenant_id, settings)
    retry = Job(
        id=new_id("job"),
        tenant_id=job.tenant_id,
        status=JobStatus.QUEUED,
        kind=job.kind,
        model=job.model,
        method=job.method,
        task=job.task,
        config=config,
        max_attempts=settings.max_attempts,
        parent_job_id=job.id,
        source_job_id=job.source_job_id,
    )
    JobRepository(session, job.tenant_id).add(retry)
    status_event(session, retry.id, JobStatus.QUEUED, f"retry of {job.id}", parent_job_id=job.id)
    return retry


def _request_of(job: Job) -> JobCreate:
    """The request a stored job config answers (its keys, in the API's names, are
    ``JobCreate``'s fields)."""
    fields = set(JobCreate.model_fields)
    stored = public_config(job.config)
    return JobCreate.model_validate({k: v for k, v in stored.items() if k in fields})


def _check_again(session: Session, job: Job, settings: Settings) -> dict[str, Any]:
    """The stored config of an evaluate/generate/export job, after checking that its model
    is still served, its datasets still exist and its source job still has its model."""
    config = dict(job.config)
    if job.model not in settings.models:
        raise invalid("model", f"{job.model!r} is not served here; see GET /v1/models")
    datasets = DatasetRepository(session, job.tenant_id)
    for field, dataset_id in dataset_refs(config).items():
        if datasets.get(dataset_id) is None:
            raise invalid(field, f"no dataset {dataset_id!r}")
    if job.source_job_id is not None:
        succeeded_tune_job(session, job.tenant_id, job.source_job_id)
    elif config.get("source_job_id"):
        raise invalid("source_job_id", "the tuned job this job used no longer exists")
    return config
