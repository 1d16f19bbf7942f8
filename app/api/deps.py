"""Request dependencies: settings, the request's session (committed once), the tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from app.auth import authenticate
from app.db.models import Tenant
from app.db.session import unit_of_work
from app.settings import Settings
from app.storage import ArtifactStore


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the endpoint returns (before the response)."""
    with unit_of_work(request.app.state.session_factory) as session:
        yield session


# scope="function": commit right after the endpoint, so a failed commit is an error response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]


def current_tenant(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Tenant:
    """The tenant of the bearer API key; 401 problem otherwise.

    ``app.edge.EdgeMiddleware`` authenticates every ``/v1`` request before its body is read
    and leaves the (detached) tenant in the request state: then no query is made here, so
    a streaming upload holds no database connection while its body arrives.
    """
    tenant = getattr(request.state, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return authenticate(session, authorization)


TenantDep = Annotated[Tenant, Depends(current_tenant)]
