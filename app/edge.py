"""The HTTP edge (pure ASGI middleware): what every request goes through before a route.

In order, for each HTTP request:

1. Health and metrics (``/healthz``, ``/readyz``, ``/metrics``) pass straight through: no
   key, no slot, so probes answer even when every slot is busy.
2. ``/v1`` requests are authenticated from their ``Authorization`` header *before any of the
   body is read*: a request without a valid key gets 401 and the connection is closed, so
   an unauthenticated client cannot make the server buffer anything. The tenant is put in
   ``scope["state"]["tenant"]`` for ``app.api.deps.current_tenant``.
3. The body is received here, outside the request slots: a non-upload body (JSON, forms) is
   buffered up to ``max_body_bytes`` (413 past it, while streaming) within
   ``body_timeout_seconds`` (408 after it), then handed to the app. A dataset upload is not
   buffered: the app streams it (under its own size cap) within ``upload_timeout_seconds``.
4. A request slot (``app.concurrency.RequestSlots``: global cap and per-tenant share) is
   taken once the body is in, and given back when the response starts.

A database outage while authenticating answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from enum import Enum
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.api.problems import database_unavailable, problem_of
from app.auth import TenantCache, authenticate_header, hash_secret
from app.concurrency import ANONYMOUS, Release, RequestSlots
from app.db.models import Tenant
from app.db.session import is_database_outage
from app.errors import PayloadTooLarge, ProblemError, RequestTimeout

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
UPLOAD = ("POST", "/v1/datasets")
log = logging.getLogger(__name__)


class Kind(Enum):
    """How the edge treats a request."""

    UNLIMITED = "unlimited"  # health and metrics
    API = "api"  # /v1: key first, body buffered
    UPLOAD = "upload"  # POST /v1/datasets: key first, body streamed by the app
    OTHER = "other"  # /ui, docs: body buffered, the route authenticates


def classify(scope: Scope) -> Kind:
    path: str = scope["path"]
    if path in UNLIMITED_PATHS:
        return Kind.UNLIMITED
    if (scope["method"], path) == UPLOAD:
        return Kind.UPLOAD
    if path == "/v1" or path.startswith("/v1/"):
        return Kind.API
    return Kind.OTHER


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


class EdgeMiddleware:
    """Key before body, capped and timed bodies, request slots (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        session_factory: sessionmaker[Session],
        slots: RequestSlots,
        tenant_cache: TenantCache | None = None,
        max_body_bytes: int,
        body_timeout: float,
        upload_timeout: float,
    ) -> None:
        self.app = app
        self.session_factory = session_factory
        self.slots = slots
        self.tenant_cache = tenant_cache
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.upload_timeout = upload_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = classify(scope)
        if kind is Kind.UNLIMITED:
            await self.app(scope, receive, send)
            return
        owner = ANONYMOUS
        if kind in (Kind.API, Kind.UPLOAD):
            try:
                tenant = await self._authenticate(scope)
            except ProblemError as exc:
                await self._refuse(exc, scope, receive, send)
                return
            scope.setdefault("state", {})["tenant"] = tenant
            owner = tenant.id
        if kind is Kind.UPLOAD:
            await self._stream_upload(owner, scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except ProblemError as exc:
            await self._refuse(exc, scope, receive, send)
            return
        except ClientGone:
            log.info("client disconnected before the request body was complete")
            return
        release = await self.slots.acquire(owner)
        try:
            await self.app(scope, _replay(body, receive), _releasing(send, release))
        finally:
            release()

    async def _authenticate(self, scope: Scope) -> Tenant:
        header = _header(scope, b"authorization")
        cache = self.tenant_cache
        if cache is not None:  # a hit costs no thread and no query
            tenant = cache.get(hash_secret(header or ""), time.monotonic())
            if tenant is not None:
                return tenant
        try:
            return await run_in_threadpool(authenticate_header, self.session_factory, header, cache)
        except SQLAlchemyError as exc:
            if not is_database_outage(exc):
                raise
            log.warning("database unavailable (%s)", type(exc).__name__)
            raise database_unavailable() from None

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, at most ``max_body_bytes``, within ``body_timeout``."""
        limit = self.max_body_bytes
        too_large = PayloadTooLarge(
            f"the request body is larger than {limit} bytes", max_bytes=limit
        )
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isascii() and declared.isdigit():
            if int(declared) > limit:
                raise too_large
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        while True:
            message = await _receive_by(receive, deadline, self.body_timeout)
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _stream_upload(self, owner: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the upload route with the body streaming outside the slots: the slot is taken
        when the last body chunk arrives (before the route stores the dataset's row)."""
        deadline = asyncio.get_running_loop().time() + self.upload_timeout
        release: Release | None = None

        async def timed_receive() -> Message:
            nonlocal release
            message = await _receive_by(receive, deadline, self.upload_timeout)
            if message["type"] == "http.request" and not message.get("more_body", False):
                if release is None:
                    release = await self.slots.acquire(owner)
            return message

        async def send_and_release(message: Message) -> None:
            if message["type"] == "http.response.start" and release is not None:
                release()
            await send(message)

        try:
            await self.app(scope, timed_receive, send_and_release)
        finally:
            if release is not None:
                release()

    async def _refuse(self, exc: ProblemError, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``exc`` without reading the rest of the body, and close the connection."""
        response = problem_of(exc)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


async def _receive_by(receive: Receive, deadline: float, budget: float) -> Message:
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(receive(), timeout=max(remaining, 0.0))
    except TimeoutError:
        raise RequestTimeout(
            f"the request body was not received within {budget:g} seconds"
        ) from None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then waits on the client (disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _releasing(send: Send, release: Release) -> Send:
    async def send_and_release(message: Message) -> None:
        if message["type"] == "http.response.start":
            release()
        await send(message)

    return send_and_release


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope["headers"]  # ASGI: (name, value) byte pairs
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
