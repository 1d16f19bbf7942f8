"""The webhook dispatcher, called by the test (no dispatcher thread): exclusive claims and
giving back, the send-time host check, a moved clock through the back-off, an unreachable
receiver; and the units: back-off, signature checks, public messages, the outbox."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import WebhookDelivery
from app.db.session import unit_of_work
from app.db.types import utcnow
from app.jobs.public import public_message
from app.settings import Settings
from app.webhooks import dispatch, outbox
from app.webhooks.signing import signature_header, verify
from tests.app.webhook_receiver import receiving
from tests.app.webhooks.helpers import (
    MAX_ATTEMPTS,
    bearer,
    create_hook,
    deliveries,
    queue_job,
)


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
        public = public_message(message)
        assert "SELECT" not in public and "parameters" not in public
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
