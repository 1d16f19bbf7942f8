"""``/v1/jobs/{id}/events``: the cursor list and the Server-Sent Events stream.

The stream polls the database (the record of truth, written by whichever process runs the
job), sends each event as ``id: <event id>`` / ``event: <type>`` / ``data: <json>``, resumes
after ``Last-Event-ID`` (or ``?after=``), sends a comment every ``KEEPALIVE_SECONDS`` so
proxies keep the connection, and ends once the job is terminal and every event was sent.
While idle a stream holds no database connection: ``app.event_watcher.EventWatcher`` (one
poll every ``POLL_SECONDS`` for all streams) wakes it. Streams per tenant are capped
(``max_event_streams_per_tenant``; 429 past it).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.deps import EventWatcherDep, FactoryDep, SessionDep, StreamQuotaDep, TenantDep
from app.api.job_schemas import EventList, EventOut
from app.api.jobs import get_job_or_404
from app.db.session import unit_of_work
from app.errors import BadRequest, TooManyRequests
from app.event_watcher import EventWatcher
from app.jobs.repository import JobRepository, job_status, list_events
from app.jobs.states import TERMINAL_STATUSES

router = APIRouter(prefix="/v1/jobs", tags=["events"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
MAX_EVENT_ID = 2**62
ASCII_DIGITS = re.compile(r"[0-9]{1,20}")
EventCursor = Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="id of the last event seen")]
EventLimit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/{job_id}/events", response_model=EventList)
def events(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    after: EventCursor = 0,
    limit: EventLimit = 100,
) -> EventList:
    """Events after the cursor, oldest first.

    One query in the common case (a poll): the events joined to the tenant's job; the job
    is looked up on its own only when no event came back, to tell "none yet" from 404.
    """
    rows, has_more = JobRepository(session, tenant.id).events(job_id, after=after, limit=limit)
    if not rows:
        get_job_or_404(session, tenant.id, job_id)
    return EventList(data=[EventOut.of(row) for row in rows], has_more=has_more)


@router.get("/{job_id}/events/stream", response_class=StreamingResponse)
def stream(
    job_id: str,
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    quota: StreamQuotaDep,
    factory: FactoryDep,
    watcher: EventWatcherDep,
    after: EventCursor = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """``text/event-stream`` of the job's events; ends at a terminal status."""
    job = get_job_or_404(session, tenant.id, job_id)
    if last_event_id is not None:
        after = max(after, parse_last_event_id(last_event_id))
    close = quota.try_open(tenant.id)
    if close is None:
        raise TooManyRequests(f"at most {quota.limit} event streams may be open at once per tenant")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return _CountedStream(
        close,
        _event_source(factory, watcher, job.id, after, request),
        media_type="text/event-stream",
        headers=headers,
    )


class _CountedStream(StreamingResponse):
    """A stream that gives its quota place back however it ends (done, error, hang-up)."""

    def __init__(self, close: Callable[[], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close = close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.close()


def parse_last_event_id(value: str) -> int:
    """The event id of a ``Last-Event-ID`` header; 400 unless it is ASCII digits within the
    cursor range (``str.isdigit`` would accept superscripts such as ``²``)."""
    if not ASCII_DIGITS.fullmatch(value) or int(value) > MAX_EVENT_ID:
        raise BadRequest("Last-Event-ID must be an event id (digits)")
    return int(value)


def _poll(factory: sessionmaker[Session], job_id: str, after: int) -> tuple[list[EventOut], bool]:
    """(new events, whether the job is terminal) in one short session."""
    with unit_of_work(factory) as session:
        status = job_status(session, job_id)
        rows, _ = list_events(session, job_id, after=after, limit=500)
        return [EventOut.of(row) for row in rows], status in TERMINAL_STATUSES


async def _event_source(
    factory: sessionmaker[Session],
    watcher: EventWatcher,
    job_id: str,
    after: int,
    request: Request,
) -> AsyncIterator[str]:
    """Send what there is, then wait (no connection held) until the watcher sees more."""
    while not await request.is_disconnected():
        # Read the status before the events: a terminal status means its event is written.
        batch, terminal = await run_in_threadpool(_poll, factory, job_id, after)
        for event in batch:
            after = event.id
            payload = json.dumps(event.model_dump(mode="json"))
            yield f"id: {event.id}\nevent: {event.type}\ndata: {payload}\n\n"
        if terminal and len(batch) < 500:
            return
        if len(batch) == 500:
            continue  # more are waiting: no need to ask the watcher
        if not await watcher.wait(job_id, after, timeout=KEEPALIVE_SECONDS):
            yield ": keepalive\n\n"
