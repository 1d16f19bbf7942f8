"""The HTTP edge (issue 16, items 1 and 2): key before body, capped and timed bodies,
request slots taken only once the body is in, health outside the cap, per-tenant share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from app.auth import TenantCache
from app.concurrency import RequestSlots
from app.db.models import Tenant
from app.main import create_app
from app.settings import Settings
from tests.app.asgi_driver import call, run
from tests.app.helpers import new_key

JSON = {"content-type": "application/json"}
MiB = 1024 * 1024


@pytest.fixture
def edge_app(settings: Settings) -> Iterator[FastAPI]:
    """Small limits: 2 slots (1 per tenant), 64 KiB bodies, 1 s body timeout."""
    tuned = settings.model_copy(
        update={
            "max_concurrent_requests": 2,
            "max_concurrent_requests_per_tenant": 1,
            "max_body_bytes": 64 * 1024,
            "body_timeout_seconds": 1.0,
        }
    )
    application = create_app(tuned)
    yield application
    application.state.engine.dispose()


def bearer(app: FastAPI) -> dict[str, str]:
    key, _ = new_key(app)
    return {"authorization": f"Bearer {key}"}


def test_an_unauthenticated_body_is_refused_before_any_of_it_is_read(edge_app) -> None:
    chunks = [b"x" * MiB] * 8  # 8 MiB offered, no length declared

    exchange = run(lambda: call(edge_app, "POST", "/v1/jobs", JSON, chunks))

    assert exchange.status == 401 and exchange.bytes_read == 0
    assert exchange.headers["connection"] == "close"
    assert exchange.headers["www-authenticate"] == "Bearer"


def test_a_bad_key_is_refused_before_the_upload_body_is_read(edge_app) -> None:
    headers = {"authorization": "Bearer grait_000000000000_" + "y" * 30, **JSON}

    exchange = run(lambda: call(edge_app, "POST", "/v1/datasets?task=open", headers, [b"x"]))

    assert exchange.status == 401 and exchange.bytes_read == 0


def test_a_json_body_over_the_cap_is_refused_while_streaming(edge_app) -> None:
    headers = {**bearer(edge_app), **JSON}
    chunks = [b" " * 16 * 1024] * 64  # 1 MiB in 16 KiB chunks, no declared length

    exchange = run(lambda: call(edge_app, "POST", "/v1/jobs", headers, chunks))

    assert exchange.status == 413, exchange.body
    assert json.loads(exchange.body)["max_bytes"] == 64 * 1024
    assert exchange.bytes_read <= 64 * 1024 + 16 * 1024  # stopped at the cap
    assert exchange.headers["connection"] == "close"


def test_a_declared_length_over_the_cap_is_refused_without_reading(edge_app) -> None:
    headers = {**bearer(edge_app), **JSON, "content-length": str(MiB)}

    exchange = run(lambda: call(edge_app, "POST", "/v1/jobs", headers, [b"{}"]))

    assert exchange.status == 413 and exchange.bytes_read == 0


def test_a_body_under_the_cap_reaches_the_route(edge_app) -> None:
    headers = {**bearer(edge_app), **JSON}

    exchange = run(lambda: call(edge_app, "POST", "/v1/jobs", headers, [b"{", b"}"]))

    assert exchange.status == 422  # the route parsed the (incomplete) job request


def test_a_slow_body_times_out_with_408(edge_app) -> None:
    headers = {**bearer(edge_app), **JSON}

    async def slow() -> object:
        return await call(edge_app, "POST", "/v1/jobs", headers, [b"{"], stall=asyncio.Event())

    exchange = run(slow, timeout=20)

    assert exchange.status == 408 and exchange.headers["connection"] == "close"


def test_slow_bodies_hold_no_slot_and_health_is_outside_the_cap(edge_app) -> None:
    """More slow bodies than slots (JSON, UI login, upload): health and another tenant's
    requests still answer."""
    slow_headers = {**bearer(edge_app), **JSON}
    form = {"content-type": "application/x-www-form-urlencoded"}
    upload = {**bearer(edge_app), "content-type": "application/x-ndjson"}
    other = bearer(edge_app)

    async def scenario() -> list[int]:
        stall = asyncio.Event()
        slow = [
            *(
                call(edge_app, "POST", "/v1/jobs", slow_headers, [b"{"], stall=stall)
                for _ in range(3)
            ),
            call(edge_app, "POST", "/ui/login", form, [b"api_key="], stall=stall),
            call(edge_app, "POST", "/v1/datasets?task=open", upload, [b"{"], stall=stall),
        ]
        tasks = [asyncio.ensure_future(request) for request in slow]
        await asyncio.sleep(0.2)  # every slow request is now waiting for its body
        answers = [
            await asyncio.wait_for(call(edge_app, "GET", path, other), 5)
            for path in ("/healthz", "/metrics", "/v1/models")
        ]
        stall.set()
        await asyncio.gather(*tasks)
        return [exchange.status for exchange in answers]

    assert run(scenario) == [200, 200, 200]


def test_health_answers_while_every_slot_is_held(edge_app) -> None:
    slots: RequestSlots = edge_app.state.request_slots

    async def scenario() -> list[int]:
        releases = [await slots.acquire(owner) for owner in ("a", "b")]
        statuses = [
            (await asyncio.wait_for(call(edge_app, "GET", path), 5)).status
            for path in ("/healthz", "/readyz", "/metrics")
        ]
        for release in releases:
            release()
        return statuses

    assert run(scenario) == [200, 200, 200]


def test_one_tenant_cannot_take_every_slot() -> None:
    slots = RequestSlots(limit=3, per_owner=2)

    async def scenario() -> tuple[bool, bool]:
        first = [await slots.acquire("a") for _ in range(2)]
        third_of_a = asyncio.ensure_future(slots.acquire("a"))
        await asyncio.sleep(0.05)
        a_waits = not third_of_a.done()
        other = await asyncio.wait_for(slots.acquire("b"), 1)  # b still gets the free slot
        first[0]()
        release = await asyncio.wait_for(third_of_a, 1)  # a's share frees up
        for done in (first[1], other, release, release):  # twice: idempotent
            done()
        return a_waits, slots.in_use() == 0 and not slots._owners

    assert run(scenario) == (True, True)


def test_checked_keys_are_reused_only_for_the_cache_time() -> None:
    cache = TenantCache(ttl=5.0)
    tenant = Tenant(id="ten_1", name="acme")
    cache.put("digest", tenant, now=100.0)
    assert cache.get("digest", now=104.9) is tenant
    assert cache.get("digest", now=105.0) is None  # expired: the database is asked again
    assert cache.get("other", now=101.0) is None
    TenantCache(ttl=0).put("digest", tenant, now=100.0)  # 0: nothing is kept
