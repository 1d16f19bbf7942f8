"""``/v1/jobs/{id}/events``: the cursor list and the Server-Sent Events stream.

The stream polls the database (the record of truth, written by whichever process runs the
job), sends each event as ``id: <event id>`` / ``event: <type>`` / ``data: <json>``, resumes
after ``Last-Event-ID`` (or ``?after=``), sends a comment every ``KEEPALIVE_SECONDS`` so
proxies keep the connection, and ends once the job is terminal and every event was sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.deps import SessionDep, TenantDep
from app.api.job_schemas import EventList, EventOut
from app.api.jobs import get_job_or_404
from app.db.models import TERMINAL_STATUSES, Job
from app.db.session import unit_of_work
from app.errors import BadRequest
from app.jobs.repository import list_events

router = APIRouter(prefix="/v1/jobs", tags=["events"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
EventCursor = Annotated[int, Query(ge=0, le=2**62, description="id of the last event seen")]
EventLimit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/{job_id}/events", response_model=EventList)
def events(
    job_id: str, session: SessionDep, tenant: TenantDep, after: EventCursor = 0,
    limit: EventLimit = 100,
) -> EventList:  # fmt: skip
    """Events after the cursor, oldest first."""
    job = get_job_or_404(session, tenant.id, job_id)
    rows, has_more = list_events(session, job.id, after=after, limit=limit)
    return EventList(data=[EventOut.of(row) for row in rows], has_more=has_more)


@router.get("/{job_id}/events/stream", response_class=StreamingResponse)
def stream(
    job_id: str,
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    after: EventCursor = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """``text/event-stream`` of the job's events; ends at a terminal status."""
    job = get_job_or_404(session, tenant.id, job_id)
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise BadRequest("Last-Event-ID must be an event id (digits)")
        after = max(after, int(last_event_id))
    factory = request.app.state.session_factory
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _event_source(factory, job.id, after, request), media_type="text/event-stream",
        headers=headers,
    )  # fmt: skip


def _poll(factory: sessionmaker[Session], job_id: str, after: int) -> tuple[list[EventOut], bool]:
    """(new events, whether the job is terminal) in one short session."""
    with unit_of_work(factory) as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        rows, _ = list_events(session, job_id, after=after, limit=500)
        return [EventOut.of(row) for row in rows], status in TERMINAL_STATUSES


async def _event_source(
    factory: sessionmaker[Session], job_id: str, after: int, request: Request
) -> AsyncIterator[str]:
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        # Read the status before the events: a terminal status means its event is written.
        batch, terminal = await run_in_threadpool(_poll, factory, job_id, after)
        for event in batch:
            after = event.id
            payload = json.dumps(event.model_dump(mode="json"))
            yield f"id: {event.id}\nevent: {event.type}\ndata: {payload}\n\n"
            last_sent = time.monotonic()
        if terminal and len(batch) < 500:
            return
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
