"""Fixtures of the webhook tests (SQLite and PostgreSQL, as the other app tests):
``forget_webhooks`` (autouse) and the service with (``hook_app``) or without
(``quiet_app``) its dispatcher thread.

- test_resource.py: the REST resource (create/list/get/delete, the secret shown once,
  tenant scoping, refused destinations and events, the cap);
- test_deliveries.py: deliveries to a local receiver (a signed ``job.succeeded`` of a real
  tiny-world job, retries with back-off, giving up, tenant isolation);
- test_dispatcher.py: the dispatcher's claims, send-time host check and clock, and units.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from app.db.models import Webhook, WebhookDelivery
from app.db.session import make_engine, make_session_factory, unit_of_work
from tests.app.webhooks.helpers import make_app


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
