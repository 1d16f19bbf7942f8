"""The request cap: never more than ``limit`` requests inside, released at response start.

The fake apps sit behind ``EdgeMiddleware`` on a path without a key (``/ui``), so no
database is involved.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.concurrency import RequestSlots
from app.db.session import make_engine
from app.edge import EdgeMiddleware

UI_SCOPE = {"type": "http", "method": "GET", "path": "/ui/x", "headers": []}


def limited(app: Any, limit: int) -> EdgeMiddleware:
    slots = RequestSlots(limit=limit, per_owner=limit)
    return EdgeMiddleware(
        app,
        session_factory=None,
        slots=slots,
        max_body_bytes=1024,  # type: ignore[arg-type]
        body_timeout=5,
        upload_timeout=5,
    )


def _run(limit: int, n_requests: int, stream_chunks: int = 0) -> dict[str, int]:
    """Send ``n_requests`` at once through the middleware around a slow fake app."""
    state = {"inside": 0, "peak": 0, "done": 0, "streams_open": 0, "streams_peak": 0}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        state["inside"] += 1
        state["peak"] = max(state["peak"], state["inside"])
        await asyncio.sleep(0.01)
        state["inside"] -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        state["streams_open"] += 1
        state["streams_peak"] = max(state["streams_peak"], state["streams_open"])
        for _ in range(stream_chunks):
            await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        state["streams_open"] -= 1
        state["done"] += 1

    async def main() -> None:
        edge = limited(app, limit)

        async def noop_send(message: Any) -> None:
            pass

        async def receive() -> Any:
            return {"type": "http.request"}

        await asyncio.gather(*(edge(dict(UI_SCOPE), receive, noop_send) for _ in range(n_requests)))

    asyncio.run(main())
    return state


def test_no_more_than_limit_inside() -> None:
    state = _run(limit=4, n_requests=50)
    assert state["peak"] == 4 and state["done"] == 50


def test_streams_leave_the_cap_when_their_response_starts() -> None:
    """Long streams do not block new requests: more streams than slots are open at once."""
    state = _run(limit=2, n_requests=20, stream_chunks=10)
    assert state["peak"] == 2 and state["done"] == 20
    assert state["streams_peak"] > 2


def test_a_failing_app_releases_its_slot() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def main() -> int:
        edge = limited(broken, 1)

        async def receive() -> Any:
            return {"type": "http.request"}

        for _ in range(3):  # would hang on the second call if the slot leaked
            try:
                await asyncio.wait_for(edge(dict(UI_SCOPE), receive, None), 1)  # type: ignore[arg-type]
            except RuntimeError:
                pass
        return edge.slots.in_use()

    assert asyncio.run(main()) == 0


def test_pool_sizing_is_ignored_for_in_memory_sqlite() -> None:
    engine = make_engine("sqlite://", pool_size=8, max_overflow=4)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("select 1").scalar() == 1
    engine.dispose()
