"""Queries of jobs (scoped by tenant), their events and their metric points.

Event and metric queries take a job id that the caller has already found through
``JobRepository`` (so they are tenant-checked by construction).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Job, JobEvent, JobMetric
from app.db.pagination import newest_first_page


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

    def add(self, job: Job) -> Job:
        if job.tenant_id != self.tenant_id:
            raise ValueError("job of another tenant")
        self.session.add(job)
        self.session.flush()
        return job


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
