"""Request dependencies: settings, the request's session (committed once), the tenant, and
the app's shared objects (queue, store, session factory, event watcher...). Routes ask for
these (``QueueDep``...) instead of reading ``request.app.state``: a route's signature says
what it uses, and a test can override any of them (``app.dependency_overrides``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.db.models import Tenant
from app.db.session import finish
from app.errors import Unauthorized
from app.event_watcher import EventWatcher, StreamQuota
from app.execution.queue import JobQueue
from app.metrics import HttpMetrics
from app.settings import Settings
from app.storage import ArtifactStore


# ``request.app.state`` is untyped (Starlette): each getter below states the type of what
# app.main.create_app stored there.
def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


# The getters below are async on purpose: they do no I/O, so FastAPI calls them on the event
# loop instead of sending each to a worker thread.
async def get_queue(request: Request) -> JobQueue:
    """Where new jobs go after the commit (local runner or Celery)."""
    queue: JobQueue = request.app.state.queue
    return queue


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """For work that outlives the request's session (an event stream's polls)."""
    session_factory: sessionmaker[Session] = request.app.state.session_factory
    return session_factory


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_event_watcher(request: Request) -> EventWatcher:
    event_watcher: EventWatcher = request.app.state.event_watcher
    return event_watcher


async def get_event_streams(request: Request) -> StreamQuota:
    """The per-tenant quota of open event streams."""
    event_streams: StreamQuota = request.app.state.event_streams
    return event_streams


async def get_http_metrics(request: Request) -> HttpMetrics:
    metrics: HttpMetrics = request.app.state.metrics
    return metrics


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed when the endpoint returns (before the response).

    Async on purpose: creating a session does no I/O, so only the end of the unit of work
    (commit or rollback, then close) goes to a worker thread: one thread hop per request
    instead of two for a sync generator.
    """
    session = request.app.state.session_factory()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still gives back its connection
            await run_in_threadpool(finish, session, failed=True)
        raise
    await run_in_threadpool(finish, session, failed=False)


# scope="function": commit right after the endpoint, so a failed commit is an error response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
FactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
EngineDep = Annotated[Engine, Depends(get_engine)]
EventWatcherDep = Annotated[EventWatcher, Depends(get_event_watcher)]
StreamQuotaDep = Annotated[StreamQuota, Depends(get_event_streams)]
HttpMetricsDep = Annotated[HttpMetrics, Depends(get_http_metrics)]


async def current_tenant(request: Request) -> Tenant:
    """The tenant of the bearer API key.

    ``app.edge.EdgeMiddleware`` authenticates every ``/v1`` request before its body is read
    (401 otherwise) and leaves the detached tenant in the request state. Reading it here
    costs no query and no thread, so a streaming upload holds no database connection while
    its body arrives.
    """
    tenant = getattr(request.state, "tenant", None)
    if not isinstance(tenant, Tenant):  # a route outside /v1, where the edge checks no key
        raise Unauthorized("missing bearer API key")
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]
