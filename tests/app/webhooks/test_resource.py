"""The webhook REST resource on SQLite and PostgreSQL: create/list/get/delete with the
secret shown once, tenant scoping, refused and allowed destinations (the operator's extra
hosts), refused and normalised events, the per-tenant cap. Deliveries:
test_deliveries.py; the dispatcher: test_dispatcher.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.app.helpers import assert_problem
from tests.app.webhooks.helpers import (
    FAST,
    bearer,
    create_hook,
    deliveries,
)


def test_create_list_get_delete_secret_once(client: TestClient, auth: dict[str, str]) -> None:
    created = create_hook(client, auth, "http://127.0.0.1:8123/hook")
    assert created["object"] == "webhook" and created["id"].startswith("wh_")
    assert created["events"] == ["job.succeeded", "job.failed", "job.cancelled"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", created["secret"])
    other = create_hook(client, auth, "http://LOCALHOST:9/x", events=["job.queued"])
    assert other["secret"] != created["secret"]

    listed = client.get("/v1/webhooks", headers=auth).json()
    assert [w["id"] for w in listed["data"]] == [other["id"], created["id"]]
    shown = client.get(f"/v1/webhooks/{created['id']}", headers=auth).json()
    assert shown["url"] == "http://127.0.0.1:8123/hook"
    for document in (listed, shown):
        text = json.dumps(document)
        assert "secret" not in text and created["secret"] not in text
    page = client.get("/v1/webhooks?limit=1", headers=auth).json()
    assert page["has_more"] and [w["id"] for w in page["data"]] == [other["id"]]
    rest = client.get(f"/v1/webhooks?limit=1&after={other['id']}", headers=auth).json()
    assert [w["id"] for w in rest["data"]] == [created["id"]] and not rest["has_more"]
    assert client.get("/v1/webhooks?after=job_x", headers=auth).status_code == 400

    assert deliveries(client, auth, created["id"]) == []
    assert client.delete(f"/v1/webhooks/{created['id']}", headers=auth).status_code == 204
    assert_problem(client.get(f"/v1/webhooks/{created['id']}", headers=auth), 404)
    assert_problem(client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=auth), 404)
    assert_problem(client.delete(f"/v1/webhooks/{created['id']}", headers=auth), 404)
    left = client.get("/v1/webhooks", headers=auth).json()["data"]
    assert [w["id"] for w in left] == [other["id"]]


def test_other_tenant_gets_404(app: FastAPI, client: TestClient, auth: dict[str, str]) -> None:
    created = create_hook(client, auth, "http://127.0.0.1:8123/hook")
    stranger = bearer(app)
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries")):
        response = client.request(method, f"/v1/webhooks/{created['id']}{path}", headers=stranger)
        assert_problem(response, 404)
    assert client.get("/v1/webhooks", headers=stranger).json()["data"] == []
    assert client.get(f"/v1/webhooks/{created['id']}", headers=auth).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hook",
        "http://example.com/hook",
        "http://user:pw@127.0.0.1/hook",
        "http://user@localhost/hook",
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",  # an IPv4-mapped address is not the literal ::1
        "http://127.1/hook",
        "http://localhost./hook",
        "http://127.0.0.1.nip.io/hook",
        "http://127.0.0.1:99999/hook",
        "http://127.0.0.1/a b",
        "/relative/hook",
        "http://127.0.0.1/" + "a" * 2000,
    ],
)
def test_refused_destinations(client: TestClient, auth: dict[str, str], url: str) -> None:
    body = assert_problem(client.post("/v1/webhooks", json={"url": url}, headers=auth), 422)
    assert [e["field"] for e in body["errors"]] == ["url"], body
    assert client.get("/v1/webhooks", headers=auth).json()["data"] == []


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/x", "http://[::1]:8080/x", "http://[0:0::1]/x", "http://LocalHost/"]
)
def test_allowed_destinations(client: TestClient, auth: dict[str, str], url: str) -> None:
    assert create_hook(client, auth, url)["url"] == url


def test_operator_allows_more_hosts(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "d",
        database_url=database_url,
        local_runner=False,
        webhook_dispatcher=False,
        webhook_allowed_hosts="hooks.example.com, 10.0.0.5",
    )
    assert settings.webhook_allowed_hosts == ["hooks.example.com", "10.0.0.5"]
    application = create_app(settings)
    try:
        with TestClient(application) as client:
            auth = bearer(application)
            create_hook(client, auth, "https://Hooks.Example.com/grait")
            create_hook(client, auth, "http://10.0.0.5:8080/hook")
            refused = client.post("/v1/webhooks", json={"url": "http://127.0.0.1/"}, headers=auth)
            assert_problem(refused, 422)
    finally:
        application.state.engine.dispose()


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (["job.done"], "events"),
        (["job.succeeded", "dataset.created"], "events"),
        ([], "events"),
        ("job.succeeded", "body.events"),
        (["job.succeeded"] * 100, "body.events"),
    ],
)
def test_refused_events(client: TestClient, auth: dict[str, str], events: Any, field: str) -> None:
    body = {"url": "http://127.0.0.1/hook", "events": events}
    problem = assert_problem(client.post("/v1/webhooks", json=body, headers=auth), 422)
    assert [e["field"] for e in problem["errors"]] == [field], problem


def test_events_deduplicated_and_ordered(client: TestClient, auth: dict[str, str]) -> None:
    events = ["job.failed", "job.queued", "job.failed"]
    created = create_hook(client, auth, "http://127.0.0.1/", events)
    assert created["events"] == ["job.queued", "job.failed"]


def test_webhooks_per_tenant_capped(hook_app: FastAPI) -> None:
    with TestClient(hook_app) as client:
        auth = bearer(hook_app)
        for n in range(FAST["max_webhooks_per_tenant"]):
            create_hook(client, auth, f"http://127.0.0.1/{n}")
        refused = client.post("/v1/webhooks", json={"url": "http://127.0.0.1/"}, headers=auth)
        assert_problem(refused, 409)
        # Another tenant has its own allowance.
        create_hook(client, bearer(hook_app), "http://127.0.0.1/")
