"""Job commands of the API: create (idempotent), cancel, retry.

Each runs inside the request's unit of work; the caller enqueues the job after the commit
(a queue message for a row that does not exist yet would be lost or misread). Create and
retry resolve the job's request against the current datasets, settings and limits
(``spec.resolve_job``) and refuse a tenant past its active-job limit (429).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import TERMINAL_STATUSES, Job
from app.db.session import rows_changed
from app.db.types import new_id, utcnow
from app.errors import Conflict
from app.jobs.events import status_event
from app.jobs.limits import check_active_jobs
from app.jobs.repository import JobRepository
from app.jobs.spec import JobCreate, resolve_job
from app.settings import Settings


def create_job(
    session: Session,
    tenant_id: str,
    body: JobCreate,
    *,
    settings: Settings,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """A new queued job, or the job an earlier request with the same key created.

    Returns (job, created). A key reused with a different request is a 409 problem; a bad
    request a 422 naming the field; a tenant with ``max_active_jobs_per_tenant`` active
    jobs a 429 (a replay of an earlier request is answered all the same).
    """
    jobs = JobRepository(session, tenant_id)
    digest = body.request_sha256()
    if idempotency_key is not None:
        earlier = jobs.get_by_idempotency_key(idempotency_key)
        if earlier is not None:
            return _replay(earlier, digest), False
    config = resolve_job(session, tenant_id, body, settings)
    check_active_jobs(session, tenant_id, settings)
    job = Job(
        id=new_id("job"), tenant_id=tenant_id, status="queued", model=body.model,
        method=config["method"]["type"], task=body.task, config=config,
        max_attempts=settings.max_attempts, idempotency_key=idempotency_key, request_sha256=digest,
    )  # fmt: skip
    try:
        with session.begin_nested():
            jobs.add(job)
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its job.
        earlier = jobs.get_by_idempotency_key(idempotency_key or "")
        if earlier is None:
            raise
        return _replay(earlier, digest), False
    status_event(session, job.id, "queued", "job created")
    return job, True


def _replay(job: Job, digest: str) -> Job:
    if job.request_sha256 != digest:
        raise Conflict("Idempotency-Key was already used with a different request")
    return job


def cancel_job(session: Session, job: Job) -> Job:
    """Ask a job to stop. Queued: ``cancelled`` now. Running: ``cancelling`` (the runner
    stops at the next batch boundary, then kills it after the grace period). Otherwise
    nothing changes (cancel is idempotent)."""
    now = utcnow()
    for before, after in (("queued", "cancelled"), ("running", "cancelling")):
        values = {"status": after, "updated_at": now}
        if after == "cancelled":
            values["finished_at"] = now
        changed = rows_changed(
            session, update(Job).where(Job.id == job.id, Job.status == before).values(**values)
        )
        if changed == 1:
            status_event(session, job.id, after, "cancel requested")
            break
    session.refresh(job)
    return job


def retry_job(session: Session, job: Job, *, settings: Settings) -> Job:
    """A new queued job with the same settings and ``parent_job_id``; 409 unless terminal.

    The stored config is resolved again like a new request (``resolve_job``): a dataset
    deleted since, a model no longer served or a setting above today's caps is a 422
    naming the field; the active-job limit applies (429)."""
    if job.status not in TERMINAL_STATUSES:
        raise Conflict(f"job {job.id} is {job.status}; only a finished job can be retried")
    config = resolve_job(session, job.tenant_id, _request_of(job), settings)
    check_active_jobs(session, job.tenant_id, settings)
    retry = Job(
        id=new_id("job"), tenant_id=job.tenant_id, status="queued", model=job.model,
        method=job.method, task=job.task, config=config, max_attempts=settings.max_attempts,
        parent_job_id=job.id,
    )  # fmt: skip
    JobRepository(session, job.tenant_id).add(retry)
    status_event(session, retry.id, "queued", f"retry of {job.id}", parent_job_id=job.id)
    return retry


def _request_of(job: Job) -> JobCreate:
    """The request a stored job config answers (its keys are ``JobCreate``'s fields)."""
    fields = set(JobCreate.model_fields)
    return JobCreate.model_validate({k: v for k, v in job.config.items() if k in fields})
