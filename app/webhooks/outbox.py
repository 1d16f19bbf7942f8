"""The webhook outbox: a job's status change adds one ``WebhookDelivery`` per webhook of the
job's tenant that subscribes to the event, in the transaction of the change itself.

So a delivery exists exactly when its status change was committed (no event is lost when a
process dies between the two, and none is sent for a change that was rolled back). Called
from ``app.jobs.events.status_event``, the one place every status change goes through (the
API, the runners and the job's child process alike): it needs no settings and nothing of
the HTTP layer. The dispatcher (``app.webhooks.dispatch``) sends the rows later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Job, Webhook, WebhookDelivery
from app.db.types import new_id, utcnow
from app.jobs.public import public_message
from app.jobs.states import DeliveryStatus, JobStatus

DELIVERY_PREFIX = "whd"  # delivery ids: whd_<hex>


def add_deliveries(session: Session, job_id: str, status: JobStatus) -> list[WebhookDelivery]:
    """Queue a ``job.<status>`` delivery for each webhook of the job's tenant subscribed to
    it (added to ``session``; committed or rolled back with the status change). Returns the
    new rows (empty, after one query, for a tenant without webhooks)."""
    event = JobStatus(status).webhook_event
    webhooks = session.scalars(
        select(Webhook)
        .join(Job, Job.tenant_id == Webhook.tenant_id)
        .where(Job.id == job_id)
        .order_by(Webhook.id)
    ).all()
    subscribed = [webhook for webhook in webhooks if event in (webhook.events or [])]
    if not subscribed:
        return []
    # Columns, not the ORM object: the status change was a bulk UPDATE that an already
    # loaded Job object of this session would not show.
    job = session.execute(
        select(
            Job.id,
            Job.tenant_id,
            Job.kind,
            Job.model,
            Job.method,
            Job.task,
            Job.error_code,
            Job.error_message,
            Job.finished_at,
        ).where(Job.id == job_id)
    ).one()
    now = utcnow()
    rows = []
    for webhook in subscribed:
        delivery_id = new_id(DELIVERY_PREFIX)
        payload = {
            "id": delivery_id,
            "type": event,
            "created_at": _iso(now),
            "data": {"job": _job_data(job, status)},
        }
        row = WebhookDelivery(
            id=delivery_id,
            webhook_id=webhook.id,
            tenant_id=job.tenant_id,
            event=event,
            job_id=job.id,
            payload=payload,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        rows.append(row)
    return rows


def _job_data(job: Any, status: JobStatus) -> dict[str, Any]:
    """What a delivery says about the job: no config, datasets, results or secrets."""
    error = None
    if job.error_code is not None:
        error = {"code": job.error_code, "message": public_message(job.error_message)}
    return {
        "id": job.id,
        "kind": job.kind,
        "status": status,
        "model": job.model,
        "method": job.method,
        "task": job.task,
        "error": error,
        "finished_at": _iso(job.finished_at),
    }


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` (SQLite reads back naive times: they are UTC)."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")
