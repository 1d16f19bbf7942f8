"""A cap on requests inside the application at once (pure ASGI middleware).

Why: sync endpoints run in a thread pool (40 threads) and hold a pooled database connection
from their first query until the request's commit. With more requests in flight than
connections, every thread can end up waiting for a connection while the requests that hold
one wait for a thread: nothing moves until the pool timeout. Admitting at most ``limit``
requests (no more than the connection pool holds) makes that impossible; the others wait
here, asynchronously, without holding a thread or a connection.

A request leaves the cap when its response starts: by then its dependencies have run their
teardown (the session is committed and closed), so a long event stream does not keep a
slot while it streams (its polls use their own short sessions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class ConcurrencyLimitMiddleware:
    """At most ``limit`` HTTP requests between arrival and response start."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.semaphore is None:  # created in the server's event loop
            self.semaphore = asyncio.Semaphore(self.limit)
        semaphore = self.semaphore
        await semaphore.acquire()
        held = True

        async def send_and_release(message: Message) -> None:
            nonlocal held
            if held and message["type"] == "http.response.start":
                held = False
                semaphore.release()
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            if held:
                semaphore.release()
