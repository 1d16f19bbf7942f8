"""The run store: the one writer of a job's status and lease columns. Leases on job rows
(claim, heartbeat, finish, requeue and reap), a cancel request and the stale-queue resend,
each a conditional UPDATE.

A runner (local runner or Celery task) owns a job while ``lease_owner`` is its id and
``lease_expires_at`` is in the future; it renews the lease by heartbeats. Every state change
is one UPDATE whose WHERE clause checks the expected state, so two runners can never both
own a job and a late writer cannot overwrite a newer state (its UPDATE matches no row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job
from app.db.session import rows_changed, unit_of_work
from app.db.types import utcnow
from app.jobs.events import status_event
from app.jobs.states import LEASED_STATUSES, JobStatus

Factory = sessionmaker[Session]
# Exit status of a job's child that stopped because the database stayed unreachable (a
# transient error outlasted the retries; EX_TEMPFAIL): its runner gives the job back
# without using up an attempt.
EXIT_DATABASE_UNAVAILABLE = 75


@dataclass(frozen=True)
class Claim:
    """A job this runner now owns: its id and the attempt number (1 for the first run)."""

    job_id: str
    attempt: int


def claim(factory: Factory, job_id: str, owner: str, lease_seconds: float) -> Claim | None:
    """Move a ``queued`` job to ``running`` under ``owner``; None if it is not queued."""
    now = utcnow()
    with unit_of_work(factory) as session:
        changed = rows_changed(
            session,
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempt=Job.attempt + 1,
                started_at=func.coalesce(Job.started_at, now),
                error_code=None,
                error_message=None,
                updated_at=now,
            ),
        )
        if changed != 1:
            return None
        attempt = session.scalar(select(Job.attempt).where(Job.id == job_id)) or 1
        status_event(
            session, job_id, JobStatus.RUNNING, f"attempt {attempt} started", attempt=attempt
        )
        return Claim(job_id, attempt)


def heartbeat(factory: Factory, job_id: str, owner: str, lease_seconds: float) -> str | None:
    """Renew the lease; returns the job's status, or None when ``owner`` lost the lease."""
    now = utcnow()
    with unit_of_work(factory) as session:
        changed = rows_changed(
            session,
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner, Job.status.in_(LEASED_STATUSES))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds)),
        )
        if changed != 1:
            return None
        return session.scalar(select(Job.status).where(Job.id == job_id))


def finish(
    factory: Factory,
    job_id: str,
    owner: str,
    status: JobStatus,
    *,
    error: tuple[str, str] | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    """End an owned job as ``succeeded``, ``failed`` or ``cancelled``; False if not owned.

    ``error`` is ``(code, message)`` for failures.
    """
    now = utcnow()
    code, message = error if error is not None else (None, None)
    with unit_of_work(factory) as session:
        changed = rows_changed(
            session,
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == owner, Job.status.in_(LEASED_STATUSES))
            .values(
                status=status,
                finished_at=now,
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
                error_code=code,
                error_message=message,
                result=result,
            ),
        )
        if changed == 1:
            status_event(session, job_id, status, message or status, error_code=code)
        return changed == 1


def release(
    factory: Factory, job_id: str, owner: str, reason: str, *, use_attempt: bool = True
) -> JobStatus | None:
    """The owner gives the job up after its run ended without an outcome (a crash, a kill,
    a shutdown). Returns the new status: ``cancelled`` if a cancel was asked, ``failed``
    once ``max_attempts`` runs were started, else ``queued`` (to run again); None if the
    job was not owned by ``owner``. ``use_attempt=False`` (the run stopped because the
    database was unreachable, no fault of the job): back to ``queued`` and the attempt
    is not counted, so a database outage never uses up a job's attempts."""
    with unit_of_work(factory) as session:
        job = session.scalar(
            select(Job).where(
                Job.id == job_id, Job.lease_owner == owner, Job.status.in_(LEASED_STATUSES)
            )
        )
        if job is None:
            return None
        return _give_up(session, job, owner, reason, use_attempt=use_attempt)


def reap(factory: Factory) -> list[str]:
    """Release every active job whose lease expired (its runner died); returns the ids of
    the jobs put back to ``queued``, so the caller can enqueue them again."""
    now = utcnow()
    requeued = []
    with unit_of_work(factory) as session:
        expired = session.scalars(
            select(Job).where(Job.status.in_(LEASED_STATUSES), Job.lease_expires_at < now)
        ).all()
        for job in expired:
            owner = job.lease_owner or ""
            status = _give_up(session, job, owner, "lease expired: the runner stopped")
            if status == JobStatus.QUEUED:
                requeued.append(job.id)
    return requeued


def _give_up(
    session: Session, job: Job, owner: str, reason: str, *, use_attempt: bool = True
) -> JobStatus | None:
    """One conditional UPDATE moving an active job on (see ``release``)."""
    now = utcnow()
    values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    if job.status == JobStatus.CANCELLING:
        status = JobStatus.CANCELLED
        values |= {"finished_at": now}
    elif not use_attempt:
        # The next claim counts this attempt number again.
        status = JobStatus.QUEUED
        values |= {"attempt": max(job.attempt - 1, 0)}
    elif job.attempt >= job.max_attempts:
        message = f"{reason}; gave up after {job.attempt} attempts"
        status = JobStatus.FAILED
        values |= {"finished_at": now}
        values |= {"error_code": "attempts_exhausted", "error_message": message}
    else:
        status = JobStatus.QUEUED
    changed = rows_changed(
        session,
        update(Job)
        .where(Job.id == job.id, Job.lease_owner == owner, Job.status == job.status)
        .values(status=status, **values),
    )
    if changed != 1:
        return None
    status_event(session, job.id, status, reason, attempt=job.attempt)
    return status


def set_progress(
    session: Session,
    job_id: str,
    owner: str,
    stage: str,
    done: int,
    total: int,
    eta_seconds: float | None,
) -> None:
    """The job row's progress columns (``stage``, done of total, ETA), in the caller's
    unit of work; only while ``owner`` holds the lease (else nothing changes)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner)
        .values(stage=stage, progress_done=done, progress_total=total, eta_seconds=eta_seconds)
    )


def runs_under(session: Session, job_id: str, owner: str) -> bool:
    """True while job ``job_id`` is ``running`` under ``owner``'s lease: False once a
    cancel was asked (``cancelling``) or the lease is lost (the run should stop)."""
    query = select(Job.status, Job.lease_owner).where(Job.id == job_id)
    row = session.execute(query).one_or_none()
    return row is not None and row[0] == JobStatus.RUNNING and row[1] == owner


def request_cancel(session: Session, job_id: str) -> JobStatus | None:
    """Ask job ``job_id`` to stop, in the caller's unit of work (the API request): a
    ``queued`` job is ``cancelled`` at once, a ``running`` one becomes ``cancelling`` (its
    runner stops it). Returns the new status, or None when the job was in neither (nothing
    changes: cancel is idempotent). Adds the status event."""
    now = utcnow()
    moves = (
        (JobStatus.QUEUED, JobStatus.CANCELLED),
        (JobStatus.RUNNING, JobStatus.CANCELLING),
    )
    for before, after in moves:
        values: dict[str, Any] = {"status": after, "updated_at": now}
        if after == JobStatus.CANCELLED:
            values["finished_at"] = now
        changed = rows_changed(
            session, update(Job).where(Job.id == job_id, Job.status == before).values(**values)
        )
        if changed == 1:
            status_event(session, job_id, after, "cancel requested")
            return after
    return None


def touch_stale_queued(factory: Factory, older_than: float) -> list[str]:
    """Ids of jobs ``queued`` and unchanged for ``older_than`` seconds; their ``updated_at``
    is set to now, so each is re-sent at most once per ``older_than`` (one UPDATE)."""
    now = utcnow()
    with unit_of_work(factory) as session:
        rows = session.execute(
            update(Job)
            .where(
                Job.status == JobStatus.QUEUED, Job.updated_at < now - timedelta(seconds=older_than)
            )
            .values(updated_at=now)
            .returning(Job.id)
        )
        return [row[0] for row in rows]


def next_queued(factory: Factory) -> str | None:
    """The id of the oldest queued job (any tenant), or None."""
    with unit_of_work(factory) as session:
        query = (
            select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.created_at, Job.id)
        )
        return session.scalar(query.limit(1))
