"""Webhooks on SQLite and PostgreSQL: the REST resource (create/list/get/delete, the secret
shown once, tenant scoping, refused destinations and events), deliveries to a local
receiver (a signed ``job.succeeded`` of a real tiny-world job, retries with back-off,
giving up, tenant isolation), the dispatcher's claims and its send-time host check."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from app.db.models import Webhook, WebhookDelivery
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.db.types import utcnow
from app.jobs.public import public_message
from app.main import create_app
from app.settings import Settings
from app.webhooks import dispatch, outbox
from app.webhooks.signing import signature_header, verify
from tests.app.helpers import assert_problem, new_key
from tests.app.job_helpers import (
    finished,
    job_body,
    job_settings,
    retire_leftover_jobs,
    upload_world,
    wait_for,
)
from tests.app.webhook_receiver import receiving

BACKOFF = 0.4  # seconds: the tests' back-off base (attempt 2 comes >= 0.4 s after attempt 1)
MAX_ATTEMPTS = 3
FAST = {
    "webhook_poll_seconds": 0.1,
    "webhook_backoff_seconds": BACKOFF,
    "webhook_max_attempts": MAX_ATTEMPTS,
    "webhook_timeout_seconds": 5.0,
    "max_webhooks_per_tenant": 3,
}


@pytest.fixture(autouse=True)
def forget_webhooks(database_url: str) -> Iterator[None]:
    """Delete every webhook (and delivery) after each test: the database is shared by the
    test session, and a later app's dispatcher would keep retrying dead receivers."""
    yield
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            session.execute(delete(WebhookDelivery))
            session.execute(delete(Webhook))
    finally:
        engine.dispose()


def make_app(tmp_path: Path, database_url: str, toyworld_dir: Path, **extra: Any) -> FastAPI:
    """The service without a job runner (jobs stay queued), fast webhook settings."""
    return create_app(
        job_settings(
            tmp_path / "data", database_url, toyworld_dir, local_runner=False, **(FAST | extra)
        )
    )


@pytest.fixture
def hook_app(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[FastAPI]:
    """The service with its webhook dispatcher running every 0.1 s (no job runner)."""
    application = make_app(tmp_path, database_url, toyworld_dir)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def quiet_app(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[FastAPI]:
    """The service without a dispatcher thread: the test calls ``dispatch`` itself."""
    application = make_app(tmp_path, database_url, toyworld_dir, webhook_dispatcher=False)
    yield application
    application.state.engine.dispose()


def bearer(app: FastAPI) -> dict[str, str]:
    key, _ = new_key(app)
    return {"Authorization": f"Bearer {key}"}


def create_hook(client: TestClient, auth: dict[str, str], url: str, events=None) -> dict:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    response = client.post("/v1/webhooks", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(client: TestClient, auth: dict[str, str], webhook_id: str) -> list[dict]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_delivery(
    client: TestClient, auth: dict[str, str], webhook_id: str, status: str, timeout=60.0
) -> dict:
    """The webhook's newest delivery once it has ``status``; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(client, auth, webhook_id)
        if rows and rows[0]["status"] == status:
            return rows[0]
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def queue_job(client: TestClient, auth: dict[str, str], toyworld_dir: Path) -> str:
    """A queued job of the tenant (nothing runs it): its ``job.queued`` event."""
    ids = upload_world(client, auth, toyworld_dir)
    response = client.post("/v1/jobs", json=job_body(ids), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def check_signature(secret: str, received_headers: dict[str, str], body: bytes) -> None:
    """What a receiver does: HMAC-SHA256 over ``<t>.<body>`` equals ``v1``, ``t`` is recent."""
    header = received_headers["Grait-Signature"]
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match, header
    stamp, given = match.groups()
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(expected.hexdigest(), given)
    assert abs(time.time() - int(stamp)) < 300
    assert verify(secret, header, body)
    assert not verify(secret, header, body + b" ")
    assert not verify(secret[:-1] + ("A" if secret[-1] != "A" else "B"), header, body)


# --- the resource ---


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
        assert "secret" not in json.dumps(document) and created["secret"] not in json.dumps(
            document
        )
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
    assert [w["id"] for w in client.get("/v1/webhooks", headers=auth).json()["data"]] == [
        other["id"]
    ]


def test_other_tenant_gets_404(app: FastAPI, client: TestClient, auth: dict[str, str]) -> None:
    created = create_hook(client, auth, "http://127.0.0.1:8123/hook")
    stranger = bearer(app)
    for method, path in (
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/deliveries"),
    ):
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
    assert create_hook(client, auth, "http://127.0.0.1/", events)["events"] == [
        "job.queued",
        "job.failed",
    ]


def test_webhooks_per_tenant_capped(hook_app: FastAPI) -> None:
    with TestClient(hook_app) as client:
        auth = bearer(hook_app)
        for n in range(FAST["max_webhooks_per_tenant"]):
            create_hook(client, auth, f"http://127.0.0.1/{n}")
        refused = client.post("/v1/webhooks", json={"url": "http://127.0.0.1/"}, headers=auth)
        assert_problem(refused, 409)
        # Another tenant has its own allowance.
        create_hook(client, bearer(hook_app), "http://127.0.0.1/")


# --- deliveries ---


def test_real_job_sends_signed_job_succeeded(
    tmp_path: Path, database_url: str, toyworld_dir: Path
) -> None:
    """A tiny-world job run by the local runner: the receiver gets exactly one request, a
    ``job.succeeded`` whose signature checks out with the secret of the create answer."""
    retire_leftover_jobs(database_url)
    settings = job_settings(tmp_path / "data", database_url, toyworld_dir, **FAST)
    application = create_app(settings)
    try:
        with receiving() as receiver, TestClient(application) as client:
            auth = bearer(application)
            hook = create_hook(client, auth, receiver.url, events=["job.succeeded"])
            ids = upload_world(client, auth, toyworld_dir)
            job_id = client.post("/v1/jobs", json=job_body(ids), headers=auth).json()["id"]
            job = wait_for(client, auth, job_id, finished)
            assert job["status"] == "succeeded", job["error"]

            (request,) = receiver.wait_for(1)
            check_signature(hook["secret"], request.headers, request.body)
            assert request.path == "/hook"
            assert request.headers["Content-Type"] == "application/json"
            assert request.headers["Grait-Event"] == "job.succeeded"
            payload = json.loads(request.body)
            assert payload["type"] == "job.succeeded"
            assert payload["id"] == request.headers["Grait-Delivery"]
            assert payload["data"]["job"] == {
                "id": job_id,
                "kind": "tune",
                "status": "succeeded",
                "model": "toyworld/tiny",
                "method": "grait",
                "task": "choice",
                "error": None,
                "finished_at": job["finished_at"],
            }
            # Nothing of the job's inputs, results or the secret travels.
            for secret_or_input in (hook["secret"], ids["train"], '"result"', '"config"'):
                assert secret_or_input not in request.body.decode()

            log = wait_delivery(client, auth, hook["id"], "delivered")
            assert log["id"] == payload["id"] and log["job_id"] == job_id
            assert log["attempts"] == 1 and log["last_status_code"] == 200
            assert log["last_error"] is None and log["delivered_at"] is not None
            assert log["next_attempt_at"] is None and log["payload"] == payload
            time.sleep(0.5)  # queued and running were not subscribed: nothing else came
            assert len(receiver.requests) == 1
    finally:
        application.state.engine.dispose()


def test_retry_with_backoff_then_delivered(hook_app: FastAPI, toyworld_dir: Path) -> None:
    with receiving([500, 200]) as receiver, TestClient(hook_app) as client:
        auth = bearer(hook_app)
        hook = create_hook(client, auth, receiver.url, events=["job.queued"])
        job_id = queue_job(client, auth, toyworld_dir)
        first, second = receiver.wait_for(2)
        assert second.at - first.at >= BACKOFF * 0.9  # the back-off was waited out
        assert first.headers["Grait-Delivery"] == second.headers["Grait-Delivery"]
        assert first.body == second.body  # the same event, signed again
        check_signature(hook["secret"], second.headers, second.body)
        log = wait_delivery(client, auth, hook["id"], "delivered")
        assert log["attempts"] == 2 and log["last_status_code"] == 200
        assert log["job_id"] == job_id and log["event"] == "job.queued"
        assert len(deliveries(client, auth, hook["id"])) == 1


def test_failing_receiver_gives_up_after_max_attempts(
    hook_app: FastAPI, toyworld_dir: Path
) -> None:
    with receiving([500]) as receiver, TestClient(hook_app) as client:
        auth = bearer(hook_app)
        hook = create_hook(client, auth, receiver.url, events=["job.queued"])
        queue_job(client, auth, toyworld_dir)
        log = wait_delivery(client, auth, hook["id"], "failed")
        assert log["attempts"] == MAX_ATTEMPTS and log["last_status_code"] == 500
        # A short, printable snippet of the answer, not the whole body.
        assert log["last_error"].startswith("HTTP 500: receiver says no")
        assert len(log["last_error"]) <= 120 and "\x00" not in log["last_error"]
        requests = receiver.requests
        assert len(requests) == MAX_ATTEMPTS
        gaps = [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]
        assert gaps[1] >= 2 * BACKOFF * 0.9, gaps  # doubling: 0.4 s, then 0.8 s
        time.sleep(3 * BACKOFF)
        assert len(receiver.requests) == MAX_ATTEMPTS  # no more tries after failed


def test_deliveries_stay_within_the_tenant(hook_app: FastAPI, toyworld_dir: Path) -> None:
    with receiving() as first, receiving() as second, TestClient(hook_app) as client:
        auth_a, auth_b = bearer(hook_app), bearer(hook_app)
        hook_a = create_hook(client, auth_a, first.url, events=["job.queued"])
        hook_b = create_hook(client, auth_b, second.url, events=["job.queued"])
        job_a = queue_job(client, auth_a, toyworld_dir)
        (request,) = first.wait_for(1)
        assert json.loads(request.body)["data"]["job"]["id"] == job_a
        check_signature(hook_a["secret"], request.headers, request.body)
        wait_delivery(client, auth_a, hook_a["id"], "delivered")
        time.sleep(0.5)
        assert second.requests == [] and deliveries(client, auth_b, hook_b["id"]) == []

        job_b = queue_job(client, auth_b, toyworld_dir)
        (request,) = second.wait_for(1)
        assert json.loads(request.body)["data"]["job"]["id"] == job_b
        check_signature(hook_b["secret"], request.headers, request.body)
        assert len(first.requests) == 1


def test_cancel_is_delivered_with_its_status(hook_app: FastAPI, toyworld_dir: Path) -> None:
    """Every status change goes through the outbox, the API's cancel too."""
    with receiving() as receiver, TestClient(hook_app) as client:
        auth = bearer(hook_app)
        create_hook(client, auth, receiver.url)  # the default events: no job.queued
        job_id = queue_job(client, auth, toyworld_dir)
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).status_code == 200
        (request,) = receiver.wait_for(1)
        job = json.loads(request.body)["data"]["job"]
        assert (job["id"], job["status"]) == (job_id, "cancelled")
        assert job["finished_at"] is not None


def test_deleted_webhook_gets_nothing_more(quiet_app: FastAPI, toyworld_dir: Path) -> None:
    with receiving() as receiver, TestClient(quiet_app) as client:
        auth = bearer(quiet_app)
        hook = create_hook(client, auth, receiver.url, events=["job.queued"])
        queue_job(client, auth, toyworld_dir)
        assert [d["status"] for d in deliveries(client, auth, hook["id"])] == ["pending"]
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=auth).status_code == 204
        settings = quiet_app.state.settings
        with dispatch.http_client(settings) as http:
            dispatch.dispatch_due(quiet_app.state.session_factory, settings, http)
        assert receiver.requests == []


# --- the dispatcher ---


def test_claims_are_exclusive_and_unclaim_gives_back(
    quiet_app: FastAPI, toyworld_dir: Path
) -> None:
    factory, settings = quiet_app.state.session_factory, quiet_app.state.settings
    with receiving() as receiver, TestClient(quiet_app) as client:
        auth = bearer(quiet_app)
        hook = create_hook(client, auth, receiver.url, events=["job.queued"])
        queue_job(client, auth, toyworld_dir)
        now = utcnow()
        claimed = [c for c in dispatch.claim_due(factory, settings, now) if c.url == receiver.url]
        assert len(claimed) == 1 and claimed[0].attempt == 1
        again = dispatch.claim_due(factory, settings, now)
        assert all(c.id != claimed[0].id for c in again)
        # Given back untried: due again with its attempt not counted.
        dispatch.unclaim(factory, claimed[0], now)
        (row,) = deliveries(client, auth, hook["id"])
        assert row["attempts"] == 0 and row["status"] == "pending"
        # A stopped dispatcher gives back what it claimed and sends nothing.
        stop = threading.Event()
        stop.set()
        with dispatch.http_client(settings) as http:
            assert dispatch.dispatch_due(factory, settings, http, stop=stop) == 0
        assert receiver.requests == [] and deliveries(client, auth, hook["id"])[0]["attempts"] == 0


def test_host_checked_again_at_send_time(quiet_app: FastAPI, toyworld_dir: Path) -> None:
    """A host the operator no longer allows is not contacted, even for an older webhook."""
    factory, settings = quiet_app.state.session_factory, quiet_app.state.settings
    narrowed = settings.model_copy(update={"webhook_allowed_hosts": ["localhost"]})
    with receiving() as receiver, TestClient(quiet_app) as client:
        auth = bearer(quiet_app)
        hook = create_hook(client, auth, receiver.url, events=["job.queued"])
        queue_job(client, auth, toyworld_dir)
        with dispatch.http_client(narrowed) as http:
            assert dispatch.dispatch_due(factory, narrowed, http) >= 1
        (row,) = deliveries(client, auth, hook["id"])
        assert row["status"] == "pending" and row["attempts"] == 1
        assert "not allowed" in row["last_error"] and row["last_status_code"] is None
        assert receiver.requests == []


def test_clock_moves_through_the_backoff(quiet_app: FastAPI, toyworld_dir: Path) -> None:
    """With a clock moved past each back-off, a dead receiver is failed after max tries;
    before the back-off is over nothing is tried."""
    factory = quiet_app.state.session_factory
    settings = quiet_app.state.settings.model_copy(update={"webhook_backoff_seconds": 600.0})
    with receiving([503]) as receiver, TestClient(quiet_app) as client:
        auth = bearer(quiet_app)
        hook = create_hook(client, auth, receiver.url, events=["job.queued"])
        queue_job(client, auth, toyworld_dir)
        moment = [utcnow()]
        with dispatch.http_client(settings) as http:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                dispatch.dispatch_due(factory, settings, http, clock=lambda: moment[0])
                assert len(receiver.requests) == attempt
                dispatch.dispatch_due(factory, settings, http, clock=lambda: moment[0])
                assert len(receiver.requests) == attempt  # not due yet
                wait = dispatch.backoff_seconds(attempt, settings, jitter=1.0)
                moment[0] += timedelta(seconds=wait + 1)
        (row,) = deliveries(client, auth, hook["id"])
        assert row["status"] == "failed" and row["attempts"] == MAX_ATTEMPTS
        assert row["last_error"].startswith("HTTP 503: receiver says no x")


# --- units ---


def test_backoff_doubles_up_to_the_cap() -> None:
    settings = Settings(webhook_backoff_seconds=5, webhook_backoff_max_seconds=3600)
    waits = [dispatch.backoff_seconds(n, settings) for n in range(1, 12)]
    assert waits[:4] == [5, 10, 20, 40] and waits[-1] == 3600 and max(waits) == 3600
    assert dispatch.backoff_seconds(2, settings, jitter=0.999) < 11


def test_verify_refuses_old_or_malformed_signatures() -> None:
    body, secret = b'{"a":1}', "whsec_test"
    header = signature_header(secret, body, timestamp=1_000_000)
    assert verify(secret, header, body, now=1_000_100)
    assert not verify(secret, header, body, tolerance_s=60, now=1_000_100)
    for bad in ("", "t=abc,v1=00", "v1=" + "0" * 64, "t=1000000", "garbage"):
        assert not verify(secret, bad, body, now=1_000_000)


def test_public_messages_hide_sql() -> None:
    for message in (None, "out of memory", "boom [SQL: SELECT secret FROM x] [parameters: (1,)]"):
        assert "SELECT" not in public_message(message) and "parameters" not in public_message(
            message
        )
    assert public_message("out of memory") == "out of memory"


def test_outbox_ignores_tenants_without_webhooks(quiet_app: FastAPI, toyworld_dir: Path) -> None:
    with TestClient(quiet_app) as client:
        auth = bearer(quiet_app)
        job_id = queue_job(client, auth, toyworld_dir)
    with unit_of_work(quiet_app.state.session_factory) as session:
        assert outbox.add_deliveries(session, job_id, "succeeded") == []
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
        assert rows.all() == []


def test_unreachable_receiver_is_recorded(quiet_app: FastAPI, toyworld_dir: Path) -> None:
    factory, settings = quiet_app.state.session_factory, quiet_app.state.settings
    with receiving() as receiver:
        dead_url = receiver.url  # nothing listens there once the receiver has stopped
    with TestClient(quiet_app) as client:
        auth = bearer(quiet_app)
        hook = create_hook(client, auth, dead_url, events=["job.queued"])
        queue_job(client, auth, toyworld_dir)
        with dispatch.http_client(settings) as http:
            dispatch.dispatch_due(factory, settings, http)
        (row,) = deliveries(client, auth, hook["id"])
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, None)
        assert row["last_error"] == "request failed: ConnectError"
        assert row["next_attempt_at"] is not None
