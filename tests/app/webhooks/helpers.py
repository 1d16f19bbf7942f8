"""Helpers of the webhook tests: fast webhook settings, the app without a job runner, and
helpers that create hooks, queue jobs, wait for a delivery and check a signature as a
receiver does (the fixtures are in conftest.py)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.webhooks.signing import verify
from tests.app.helpers import new_key
from tests.app.job_helpers import job_body, job_settings, upload_world

BACKOFF = 0.4  # seconds: the tests' back-off base (attempt 2 comes >= 0.4 s after attempt 1)
MAX_ATTEMPTS = 3
FAST = {
    "webhook_poll_seconds": 0.1,
    "webhook_backoff_seconds": BACKOFF,
    "webhook_max_attempts": MAX_ATTEMPTS,
    "webhook_timeout_seconds": 5.0,
    "max_webhooks_per_tenant": 3,
}


def make_app(tmp_path: Path, database_url: str, toyworld_dir: Path, **extra: Any) -> FastAPI:
    """The service without a job runner (jobs stay queued), fast webhook settings."""
    return create_app(
        job_settings(
            tmp_path / "data", database_url, toyworld_dir, local_runner=False, **(FAST | extra)
        )
    )


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
