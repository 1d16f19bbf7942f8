"""``/v1/jobs``: create (idempotent), list, get, cancel, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Response
from sqlalchemy.orm import Session

from app.api.deps import QueueDep, SessionDep, SettingsDep, TenantDep
from app.api.job_schemas import JobList, JobOut
from app.api.pagination import After, Limit, check_cursor
from app.db.models import Job
from app.errors import NotFound
from app.execution.queue import JobQueue
from app.jobs.repository import JobRepository
from app.jobs.service import cancel_job, create_job, retry_job
from app.jobs.spec import JobCreate
from app.jobs.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="the same key and body within a tenant return the first job",
    ),
]


def get_job_or_404(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; another tenant's (or no) job is a 404 problem."""
    job = JobRepository(session, tenant_id).get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def _enqueue_after_commit(queue: JobQueue, background: BackgroundTasks, job_id: str) -> None:
    # Background tasks run after the response, so after the request's commit.
    background.add_task(queue.enqueue, job_id)


def answer_new_job(
    job: Job, created: bool, queue: JobQueue, response: Response, background: BackgroundTasks
) -> JobOut:
    """The answer of every job-creating route (``add_job``'s result): 201 and the job
    enqueued after the commit, or 200 with ``Idempotent-Replayed`` for the job an earlier
    request with the same ``Idempotency-Key`` created."""
    if created:
        _enqueue_after_commit(queue, background, job.id)
    else:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.of(job)


@router.post("", status_code=201, response_model=JobOut)
def create(
    body: JobCreate,
    queue: QueueDep,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a job; 201 with the resolved config, or 200 with the job of an earlier request
    that used the same ``Idempotency-Key`` (409 if its body differed). 422 names a bad or
    capped setting; 429 when the tenant has too many jobs queued or running."""
    job, created = create_job(
        session, tenant.id, body, settings=settings, idempotency_key=idempotency_key
    )
    return answer_new_job(job, created, queue, response, background)


@router.get("", response_model=JobList)
def list_jobs(
    session: SessionDep,
    tenant: TenantDep,
    after: After = None,
    limit: Limit = 20,
    status: JobStatus | None = None,
) -> JobList:
    """The tenant's jobs, newest first, optionally only one status."""
    rows, has_more = JobRepository(session, tenant.id).list(
        status=status, after=check_cursor(after, "job"), limit=limit
    )
    return JobList(data=[JobOut.of(job) for job in rows], has_more=has_more)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobOut:
    return JobOut.of(get_job_or_404(session, tenant.id, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, session: SessionDep, tenant: TenantDep) -> JobOut:
    """Idempotent: queued -> cancelled, running -> cancelling, otherwise unchanged."""
    return JobOut.of(cancel_job(session, get_job_or_404(session, tenant.id, job_id)))


@router.post("/{job_id}/retry", status_code=201, response_model=JobOut)
def retry(
    job_id: str,
    queue: QueueDep,
    background: BackgroundTasks,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
) -> JobOut:
    """A new job with the same config and ``parent_job_id``; 409 unless the job finished,
    422 when its inputs or settings are no longer valid (a deleted dataset), 429 when the
    tenant has too many jobs queued or running."""
    job = get_job_or_404(session, tenant.id, job_id)
    new = retry_job(session, job, settings=settings)
    _enqueue_after_commit(queue, background, new.id)
    return JobOut.of(new)
