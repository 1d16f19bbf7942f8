"""Queries of jobs (scoped by tenant), their events and their metric points.

Event and metric queries take a job id that the caller has already found through
``JobRepository`` (so they are tenant-checked by construction). Status and lease columns
change only through ``app.execution.lease`` (the run store); a new job is added here.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Job, JobEvent, JobMetric
from app.db.pagination import newest_first_page
from app.jobs.states import ACTIVE_STATUSES


class JobRepository:
    """Jobs of one tenant."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def get(self, job_id: str) -> Job | None:
        query = select(Job).where(Job.tenant_id == self.tenant_id, Job.id == job_id)
        return self.session.scalar(query)

    def get_by_idempotency_key(self, key: str) -> Job | None:
        query = select(Job).where(Job.tenant_id == self.tenant_id, Job.idempotency_key == key)
        return self.session.scalar(query)

    def list(
        self, *, status: str | None, after: str | None, limit: int
    ) -> tuple[Sequence[Job], bool]:
        """Newest first, optionally one status; (up to ``limit`` jobs, whether more follow)."""
        query = select(Job).where(Job.tenant_id == self.tenant_id)
        if status is not None:
            query = query.where(Job.status == status)
        return newest_first_page(self.session, query, Job.id, after=after, limit=limit)

    # ``builtins.list``: inside the class, ``list`` names the method above.
    def get_many(self, job_ids: Sequence[str]) -> builtins.list[Job]:
        """The tenant's jobs among ``job_ids``, in the order asked for (others left out)."""
        query = select(Job).where(Job.tenant_id == self.tenant_id, Job.id.in_(job_ids))
        by_id = {job.id: job for job in self.session.scalars(query)}
        return [by_id[i] for i in job_ids if i in by_id]

    def newest(self, limit: int) -> Sequence[Job]:
        """Up to ``limit`` jobs, newest first."""
        query = select(Job).where(Job.tenant_id == self.tenant_id)
        return self.session.scalars(
            query.order_by(Job.created_at.desc(), Job.id).limit(limit)
        ).all()

    def count_active(self) -> int:
        """How many of the tenant's jobs are queued, running or cancelling."""
        query = select(func.count()).select_from(Job)
        query = query.where(Job.tenant_id == self.tenant_id, Job.status.in_(ACTIVE_STATUSES))
        return self.session.scalar(query) or 0

    def events(self, job_id: str, *, after: int, limit: int) -> tuple[Sequence[JobEvent], bool]:
        """Events of the tenant's job ``job_id`` with id > ``after``, oldest first, in one
        query (the events joined to the job); (events, whether more follow). No events is
        also the answer for a job of another tenant: the caller tells that apart."""
        query = (
            select(JobEvent)
            .join(Job, Job.id == JobEvent.job_id)
            .where(Job.id == job_id, Job.tenant_id == self.tenant_id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit + 1)
        )
        rows = self.session.scalars(query).all()
        return rows[:limit], len(rows) > limit

    def add(self, job: Job) -> Job:
        if job.tenant_id != self.tenant_id:
            raise ValueError("job of another tenant")
        self.session.add(job)
        self.session.flush()
        return job


def job_status(session: Session, job_id: str) -> str | None:
    """The status of job ``job_id`` (any tenant: the caller found it already), or None."""
    return session.scalar(select(Job.status).where(Job.id == job_id))


def list_events(
    session: Session, job_id: str, *, after: int, limit: int
) -> tuple[Sequence[JobEvent], bool]:
    """Events of a job with id > ``after``, oldest first; (events, whether more follow)."""
    query = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after)
        .order_by(JobEvent.id)
        .limit(limit + 1)
    )
    rows = session.scalars(query).all()
    return rows[:limit], len(rows) > limit


def metric_series(
    session: Session, job_id: str, name: str | None
) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value), ...]}`` sorted by step. A resumed run repeats steps after
    its checkpoint: the newest point of each (name, step) wins."""
    newest = (
        select(func.max(JobMetric.id))
        .where(JobMetric.job_id == job_id)
        .group_by(JobMetric.name, JobMetric.step)
    )
    query = select(JobMetric).where(JobMetric.id.in_(newest))
    if name is not None:
        query = query.where(JobMetric.name == name)
    series: dict[str, list[tuple[int, float]]] = {}
    for point in session.scalars(query.order_by(JobMetric.name, JobMetric.step)):
        series.setdefault(point.name, []).append((point.step, point.value))
    return series
