"""Faults at the edge (issue 16, items 12 and 13): a database outage answers 503 with
``Retry-After``; a client that drops its upload is logged as a disconnect, not a 500."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.app.asgi_driver import call, run
from tests.app.helpers import assert_problem, open_lines, stored_files

# Nothing listens on port 1: every connection attempt is refused at once.
DOWN_URL = "postgresql+psycopg://postgres@127.0.0.1:1/grait"
SOME_KEY = {"Authorization": "Bearer grait_0123456789ab_" + "s" * 30}


@pytest.fixture
def down_client(tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", database_url=DOWN_URL, local_runner=False)
    return TestClient(create_app(settings))  # no lifespan: startup would log the outage


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/ui/jobs")],
)
def test_a_database_outage_answers_503_with_retry_after(
    down_client: TestClient, method: str, path: str
) -> None:
    response = down_client.request(method, path, headers=SOME_KEY, json={})
    body = assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"].isdigit()
    assert "127.0.0.1" not in body["detail"] and "psycopg" not in response.text


def test_health_says_not_ready_during_an_outage(down_client: TestClient) -> None:
    assert down_client.get("/healthz").status_code == 200
    assert_problem(down_client.get("/readyz"), 503)


def test_a_dropped_upload_is_a_logged_disconnect(
    app: FastAPI, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app.state.store.ensure()
    headers = {"authorization": auth["Authorization"], "content-type": "application/x-ndjson"}
    caplog.set_level(logging.INFO)

    async def dropped() -> object:
        return await call(
            app,
            "POST",
            "/v1/datasets?task=open",
            headers,
            [open_lines(2)],
            disconnect_after_chunks=True,
        )

    exchange = run(dropped)

    assert exchange.status == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any("client disconnected" in r.getMessage() for r in caplog.records)
    assert stored_files(app) == []
