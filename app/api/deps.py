"""Request dependencies: settings, the request's session (committed once), the tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.db.models import Tenant
from app.db.session import finish
from app.errors import Unauthorized
from app.settings import Settings
from app.storage import ArtifactStore


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


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
