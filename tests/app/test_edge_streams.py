"""Event streams (issue 16, items 7 and 9): a per-tenant cap, no database polling per idle
stream, and a ``Last-Event-ID`` that is not ASCII digits is a 400."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.errors import PROBLEM_BASE
from app.main import create_app
from tests.app.asgi_driver import Exchange, call, run
from tests.app.helpers import choice_lines, new_key, upload_raw
from tests.app.job_helpers import job_body, job_settings


@pytest.fixture
def queued(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """An API-only service (cap: 2 streams per tenant) and one queued job of a tenant."""
    settings = job_settings(
        tmp_path / "data",
        database_url,
        tmp_path / "tw",
        local_runner=False,
        max_event_streams_per_tenant=2,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        key, _ = new_key(app)
        auth = {"Authorization": f"Bearer {key}"}
        ds = upload_raw(client, auth, choice_lines(3), "choice").json()["id"]
        job = client.post(
            "/v1/jobs", json=job_body({"train": ds, "test_id": ds, "test_ood": ds}), headers=auth
        ).json()
        yield {"app": app, "client": client, "auth": auth, "path": f"/v1/jobs/{job['id']}"}
    app.state.engine.dispose()


# Sent as Latin-1 bytes (the header encoding; TestClient would send UTF-8): "²" is b"\xb2",
# which str.isdigit accepts and int() does not.
@pytest.mark.parametrize("value", ["²", "1²", "99999999999999999999", "-1", "1e3"])
def test_last_event_id_must_be_ascii_digits_in_range(queued: dict[str, Any], value: str) -> None:
    headers = {"authorization": queued["auth"]["Authorization"], "last-event-id": value}
    path = f"{queued['path']}/events/stream"

    exchange = run(lambda: call(queued["app"], "GET", path, headers))

    assert exchange.status == 400, exchange.body
    assert json.loads(exchange.body)["type"] == PROBLEM_BASE + "bad-request"


def open_streams(queued: dict[str, Any], count: int, hang_up: asyncio.Event) -> list[Exchange]:
    """Start ``count`` streams (not awaited); each exchange's ``started`` is set at its
    response start."""
    headers = {"authorization": queued["auth"]["Authorization"]}
    exchanges = [Exchange() for _ in range(count)]
    for exchange in exchanges:
        request = call(
            queued["app"],
            "GET",
            f"{queued['path']}/events/stream",
            headers,
            hang_up=hang_up,
            exchange=exchange,
        )
        asyncio.ensure_future(request)
    return exchanges


def test_streams_are_capped_per_tenant(queued: dict[str, Any]) -> None:
    async def scenario() -> list[int]:
        first, second = asyncio.Event(), asyncio.Event()
        held = open_streams(queued, 2, first)
        for exchange in held:
            await asyncio.wait_for(exchange.started.wait(), 10)
        [refused] = open_streams(queued, 1, second)
        await asyncio.wait_for(refused.started.wait(), 10)
        first.set()  # both held streams hang up: their places come back
        await asyncio.sleep(0.5)
        [again] = open_streams(queued, 1, second)
        await asyncio.wait_for(again.started.wait(), 10)
        second.set()
        await asyncio.sleep(0.2)
        assert "retry-after" in refused.headers
        return [*(e.status for e in held), refused.status, again.status]

    assert run(scenario) == [200, 200, 429, 200]


def test_idle_streams_do_not_poll_the_database_each(queued: dict[str, Any]) -> None:
    """Ten idle streams for two seconds: the queries do not grow with the number of
    streams (each stream used to poll twice a second, two queries a poll: 80 queries)."""
    app = queued["app"]
    app.state.event_streams.limit = 10
    queries = []
    listener = lambda *args: queries.append(1)  # noqa: E731

    async def scenario() -> None:
        hang_up = asyncio.Event()
        exchanges = open_streams(queued, 10, hang_up)
        for exchange in exchanges:
            await asyncio.wait_for(exchange.started.wait(), 10)
        await asyncio.sleep(0.5)  # every stream has read its backlog and is idle
        event.listen(app.state.engine, "before_cursor_execute", listener)
        await asyncio.sleep(2.0)
        event.remove(app.state.engine, "before_cursor_execute", listener)
        hang_up.set()
        await asyncio.sleep(0.2)

    run(scenario)
    assert len(queries) < 30, len(queries)  # about 4 polls a second of 2 queries, for all


def test_event_list_in_one_query_keeps_its_answers(queued: dict[str, Any]) -> None:
    """Events of the tenant's job (one query when there are some); none yet is an empty
    page; another tenant's or an unknown job is 404."""
    client, auth, path = queued["client"], queued["auth"], queued["path"]
    page = client.get(f"{path}/events?limit=1", headers=auth).json()
    assert len(page["data"]) == 1 and page["data"][0]["type"]
    last = page["data"][0]["id"]
    empty = client.get(f"{path}/events?after={last + 10**6}", headers=auth)
    assert empty.status_code == 200
    assert empty.json()["data"] == [] and empty.json()["has_more"] is False
    other, _ = new_key(queued["app"])
    stranger = {"Authorization": f"Bearer {other}"}
    assert client.get(f"{path}/events", headers=stranger).status_code == 404
    assert client.get("/v1/jobs/job_x/events", headers=auth).status_code == 404
