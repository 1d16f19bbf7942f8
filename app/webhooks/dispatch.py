"""Sending webhook deliveries: claim the due ones, POST them signed, record the outcome.

A delivery is ``pending`` until a 2xx answer (``delivered``) or until
``webhook_max_attempts`` tries failed (``failed``). After failed try n it waits
``backoff(n) = min(webhook_backoff_seconds * 2^(n-1), webhook_backoff_max_seconds)`` plus up
to 10 % jitter (defaults: 5 s, 10 s, 20 s, ... capped at one hour).

Claiming is a short transaction that pushes the row's ``next_attempt_at`` past the send's
longest duration and counts the attempt (``attempts + 1``); the POST happens outside any
transaction, and the outcome is one UPDATE conditional on that attempt number. So several
API processes can dispatch at once (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the
conditional UPDATE decides), a process that dies mid-send leaves a row that is tried again
once its claim expires (at-least-once delivery: receivers dedupe on ``Grait-Delivery``),
and a slow receiver never holds a database connection.

Sends never follow redirects, never use proxy settings from the environment, and check the
URL's host against ``GRAIT_WEBHOOK_ALLOWED_HOSTS`` again right before each POST. The error
recorded for a failed try is short: an HTTP status with a sanitized snippet of at most
``SNIPPET_CHARS`` characters of the answer, or the kind of transport error.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Webhook, WebhookDelivery
from app.db.session import rows_changed, unit_of_work
from app.db.types import utcnow
from app.jobs.states import DeliveryStatus
from app.settings import Settings
from app.webhooks.service import host_allowed
from app.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)

Factory = sessionmaker[Session]
Clock = Callable[[], datetime]
log = logging.getLogger(__name__)
BATCH = 20  # deliveries claimed at once
SNIPPET_CHARS = 100  # of a failed answer's body, in ``last_error``
CLAIM_MARGIN_SECONDS = 60.0  # a claim outlives the send's timeout by this much
USER_AGENT = "grait-webhooks/1"
ERROR_PAUSE = 5.0  # seconds between tries while the database fails (no log flood)


@dataclass(frozen=True)
class Claimed:
    """A delivery this process is sending now: attempt number ``attempt`` (1-based)."""

    id: str
    event: str
    payload: dict[str, Any]
    url: str
    secret: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """The result of one try: ``ok`` for a 2xx answer; ``status_code`` when one came."""

    ok: bool
    status_code: int | None
    error: str | None


def backoff_seconds(attempt: int, settings: Settings, jitter: float = 0.0) -> float:
    """Seconds to wait after failed try ``attempt`` (1-based); ``jitter`` in [0, 1) adds up
    to 10 % so deliveries that failed together do not all come back at once."""
    base = settings.webhook_backoff_seconds * 2.0 ** min(attempt - 1, 60)
    return min(base, settings.webhook_backoff_max_seconds) * (1.0 + 0.1 * jitter)


def claim_due(factory: Factory, settings: Settings, now: datetime) -> list[Claimed]:
    """Claim up to ``BATCH`` pending deliveries due at ``now`` (oldest due first)."""
    lease = timedelta(seconds=settings.webhook_timeout_seconds + CLAIM_MARGIN_SECONDS)
    claimed = []
    with unit_of_work(factory) as session:
        due = session.execute(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has no row locks
        ).scalars()
        for delivery_id in list(due):
            changed = rows_changed(
                session,
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + lease, attempts=WebhookDelivery.attempts + 1),
            )
            if changed != 1:  # another process claimed it in between (SQLite)
                continue
            row = session.execute(
                select(
                    WebhookDelivery.event,
                    WebhookDelivery.payload,
                    WebhookDelivery.attempts,
                    Webhook.url,
                    Webhook.secret,
                )
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.id == delivery_id)
            ).one()
            claimed.append(
                Claimed(delivery_id, row.event, row.payload, row.url, row.secret, row.attempts)
            )
    return claimed


def send(delivery: Claimed, settings: Settings, http: httpx.Client) -> Outcome:
    """POST one signed delivery; never raises (every failure is an ``Outcome``)."""
    if not host_allowed(delivery.url, settings.webhook_allowed_hosts):
        return Outcome(False, None, "host not allowed by GRAIT_WEBHOOK_ALLOWED_HOSTS; not sent")
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: delivery.id,
        SIGNATURE_HEADER: signature_header(delivery.secret, body),
    }
    try:
        with http.stream("POST", delivery.url, content=body, headers=headers) as response:
            if response.is_success:
                return Outcome(True, response.status_code, None)
            if response.is_redirect:
                return Outcome(False, response.status_code, "redirects are not followed")
            snippet = _snippet(next(response.iter_bytes(), b""))
            error = f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
            return Outcome(False, response.status_code, error)
    except httpx.TimeoutException:
        return Outcome(False, None, f"timed out after {settings.webhook_timeout_seconds:g} s")
    except Exception as error:  # httpx errors, and any other (httpx.InvalidURL is not one)
        # The type only: messages can repeat the URL or internals of the network stack.
        return Outcome(False, None, f"request failed: {type(error).__name__}")


def record(
    factory: Factory, delivery: Claimed, outcome: Outcome, settings: Settings, now: datetime
) -> DeliveryStatus | None:
    """Store the outcome of ``delivery``'s try; returns the new status (``delivered``,
    ``pending`` to try again, ``failed``), or None when the row moved on meanwhile (deleted
    with its webhook)."""
    values: dict[str, Any] = {"last_status_code": outcome.status_code}
    if outcome.ok:
        status = DeliveryStatus.DELIVERED
        values |= {"delivered_at": now, "last_error": None}
    elif delivery.attempt >= settings.webhook_max_attempts:
        status = DeliveryStatus.FAILED
        values |= {"last_error": outcome.error}
    else:
        status = DeliveryStatus.PENDING
        wait = backoff_seconds(delivery.attempt, settings, jitter=random.random())
        values |= {"last_error": outcome.error, "next_attempt_at": now + timedelta(seconds=wait)}
    with unit_of_work(factory) as session:
        changed = rows_changed(
            session,
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.attempts == delivery.attempt,
            )
            .values(status=status, **values),
        )
    return status if changed == 1 else None


def unclaim(factory: Factory, delivery: Claimed, now: datetime) -> None:
    """Give back a claimed delivery that was not sent (the dispatcher is stopping): due
    again at once, and the try is not counted."""
    with unit_of_work(factory) as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.attempts == delivery.attempt,
            )
            .values(attempts=delivery.attempt - 1, next_attempt_at=now)
        )


def dispatch_due(
    factory: Factory,
    settings: Settings,
    http: httpx.Client,
    clock: Clock = utcnow,
    stop: threading.Event | None = None,
) -> int:
    """Claim, send and record one batch of due deliveries; returns how many were tried.
    ``clock`` gives the time (tests move it forward instead of waiting out a back-off);
    once ``stop`` is set, the batch's unsent deliveries are given back (``unclaim``)."""
    claimed = claim_due(factory, settings, clock())
    for index, delivery in enumerate(claimed):
        if stop is not None and stop.is_set():
            for unsent in claimed[index:]:
                unclaim(factory, unsent, clock())
            return index
        outcome = send(delivery, settings, http)
        record(factory, delivery, outcome, settings, clock())
    return len(claimed)


def http_client(settings: Settings) -> httpx.Client:
    """The client deliveries are sent with: no redirects, no proxies from the environment,
    ``webhook_timeout_seconds`` for each phase of a request."""
    return httpx.Client(
        timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
    )


def _snippet(data: bytes) -> str:
    """At most ``SNIPPET_CHARS`` printable characters of an answer, whitespace collapsed."""
    text = data[: SNIPPET_CHARS * 4].decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:SNIPPET_CHARS]


class WebhookDispatcher:
    """A background thread of the API process: ``dispatch_due`` every
    ``webhook_poll_seconds`` (at once again after a full batch). Errors (a database
    outage) are logged and the loop goes on."""

    def __init__(self, settings: Settings, factory: Factory) -> None:
        self.settings, self.factory = settings, factory
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop_event.clear()
        self.thread = threading.Thread(target=self._loop, name="grait-webhooks", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current try (a send takes at most ``webhook_timeout_seconds``)."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _loop(self) -> None:
        with http_client(self.settings) as http:
            while not self.stop_event.is_set():
                try:
                    tried = dispatch_due(self.factory, self.settings, http, stop=self.stop_event)
                except Exception as error:
                    # The type only: database errors can hold SQL and the database URL.
                    log.warning("webhook dispatch failed: %s", type(error).__name__)
                    self.stop_event.wait(max(self.settings.webhook_poll_seconds, ERROR_PAUSE))
                    continue
                if tried < BATCH:
                    self.stop_event.wait(self.settings.webhook_poll_seconds)
