"""Drive the ASGI app directly, with full control of how the request body arrives.

``TestClient`` sends a whole body before the app runs; these helpers let a test see how
much of the body the app read, trickle it, or never finish it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

Message = dict[str, Any]


@dataclass
class Exchange:
    """One request's outcome: status, headers, body, and how many body bytes the app took."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    bytes_read: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)  # the response started


def scope_of(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    path, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def call(
    app: FastAPI,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
    *,
    stall: asyncio.Event | None = None,
    disconnect_after_chunks: bool = False,
    hang_up: asyncio.Event | None = None,
    exchange: Exchange | None = None,
) -> Exchange:
    """Send ``chunks`` as the body (then, with ``stall``, wait on it before the end of the
    body: a slow client; with ``disconnect_after_chunks``, disconnect instead of ending).
    With ``hang_up``, the client disconnects when it is set (a long stream); ``exchange``
    lets the caller watch the response while it runs."""
    exchange = exchange or Exchange()
    pending = list(chunks or [b""])
    finished = asyncio.Event()

    async def receive() -> Message:
        if pending:
            chunk = pending.pop(0)
            exchange.bytes_read += len(chunk)
            more = bool(pending) or stall is not None or disconnect_after_chunks
            return {"type": "http.request", "body": chunk, "more_body": more}
        if disconnect_after_chunks:
            return {"type": "http.disconnect"}
        if stall is not None and not stall.is_set():
            await stall.wait()
            return {"type": "http.request", "body": b"", "more_body": False}
        # The body is complete: the next event is the disconnect.
        await (hang_up or finished).wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            exchange.started.set()
        elif message["type"] == "http.response.body":
            exchange.body += message.get("body", b"")
            if not message.get("more_body", False):
                finished.set()

    await app(scope_of(method, path, headers or {}), receive, send)
    finished.set()
    return exchange


def run(coroutine: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Run ``coroutine()`` in a fresh event loop, failing after ``timeout`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine(), timeout)

    return asyncio.run(bounded())
