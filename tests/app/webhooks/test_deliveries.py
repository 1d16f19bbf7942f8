"""Webhook deliveries to a local receiver on SQLite and PostgreSQL: a signed
``job.succeeded`` of a real tiny-world job, retries with back-off, giving up after the
last attempt, tenant isolation, a cancel's delivery, nothing more for a deleted webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.webhooks import dispatch
from tests.app.job_helpers import (
    finished,
    job_body,
    job_settings,
    retire_leftover_jobs,
    upload_world,
    wait_for,
)
from tests.app.webhook_receiver import receiving
from tests.app.webhooks.helpers import (
    BACKOFF,
    FAST,
    MAX_ATTEMPTS,
    bearer,
    check_signature,
    create_hook,
    deliveries,
    queue_job,
    wait_delivery,
)


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
