"""Appending job events: the audit trail and the source of the live event stream.

A status event also queues the job's webhook deliveries (``app.webhooks.outbox``) in the
same transaction: every status change goes through ``status_event``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db.models import JobEvent
from app.jobs.states import EventType, JobStatus
from app.webhooks.outbox import add_deliveries


def add_event(
    session: Session,
    job_id: str,
    type_: EventType,
    *,
    stage: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Add one event row (committed with the caller's unit of work).

    Types (``EventType``): ``status`` (data: status, attempt...; a requeue and an error are
    status events too), ``stage_started``, ``progress`` (data: done, total, eta_seconds),
    ``stage_finished`` (data: seconds, cached), ``warning`` (stage and message: something a user
    should know that is not an error, such as "out of memory at batch size 16: retrying
    with 8"). Messages never hold dataset text or secrets.
    """
    event = JobEvent(job_id=job_id, type=type_, stage=stage, message=message, data=data)
    session.add(event)
    return event


def status_event(
    session: Session, job_id: str, status: JobStatus, message: str, **data: Any
) -> None:
    """A ``status`` event: the job moved to ``status``; and a ``job.<status>`` delivery for
    each webhook of the job's tenant subscribed to it (all committed with the change)."""
    add_event(session, job_id, EventType.STATUS, message=message, data={"status": status, **data})
    add_deliveries(session, job_id, status)
