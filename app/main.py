"""``create_app``: the FastAPI application (nothing happens at import time).

Startup: the artifact store is created; the database is migrated to head in the embedded
mode (SQLite, or ``GRAIT_AUTO_MIGRATE=true``), otherwise only checked: ``/readyz`` answers
503 until an operator runs ``alembic upgrade head``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

from app import ui
from app.api import datasets, evaluations, health, job_events, job_outputs, job_tools, jobs, models
from app.api import webhooks as webhooks_api
from app.api.deps import current_tenant
from app.api.problems import install_problem_handlers
from app.auth import TenantCache
from app.concurrency import RequestSlots
from app.db.migrate import current_is_head, upgrade_to_head
from app.db.session import make_engine, make_session_factory
from app.edge import EdgeMiddleware
from app.event_watcher import EventWatcher, StreamQuota
from app.execution.local_runner import LocalRunner
from app.execution.queue import make_queue
from app.metrics import HttpMetrics, MetricsMiddleware
from app.settings import Settings, get_settings
from app.storage import ArtifactStore
from app.ui.session import signing_key
from app.webhooks.dispatch import WebhookDispatcher

log = logging.getLogger(__name__)


def prepare_database(settings: Settings) -> None:
    """Migrate (embedded mode) or check the database; never logs the URL (it has secrets)."""
    url = settings.database_url
    if settings.is_sqlite:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    if settings.should_migrate_at_startup:
        upgrade_to_head(url)
    elif not current_is_head(url):
        log.warning("database not at the migration head: run `alembic upgrade head`")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Failures are logged and the process keeps serving /healthz; /readyz says what is wrong.
    try:
        app.state.store.ensure()
    except OSError as exc:
        log.error("artifact directory not usable: %s", type(exc).__name__)
    try:
        await run_in_threadpool(prepare_database, settings)
    except Exception as exc:
        log.error("database preparation failed: %s", type(exc).__name__)
    runner = app.state.runner
    if runner is not None:
        runner.start()
    if app.state.webhook_dispatcher is not None:
        app.state.webhook_dispatcher.start()
    yield
    if app.state.webhook_dispatcher is not None:
        await run_in_threadpool(app.state.webhook_dispatcher.stop)
    if runner is not None:
        await run_in_threadpool(runner.stop)
    app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service application for ``settings`` (default: ``get_settings()``)."""
    settings = settings or get_settings()
    app = FastAPI(title="GRAIT Service", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    # Room for every admitted request, plus the runner and event-stream polls.
    pool = {"pool_size": settings.max_concurrent_requests, "max_overflow": 16}
    app.state.engine = make_engine(settings.database_url, **pool)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.state.store = ArtifactStore(settings.artifacts)
    app.state.metrics = HttpMetrics()
    app.state.ui_secret = signing_key(settings.ui_session_key.get_secret_value())
    app.state.event_streams = StreamQuota(settings.max_event_streams_per_tenant)
    app.state.event_watcher = EventWatcher(app.state.session_factory, job_events.POLL_SECONDS)
    app.state.runner = None
    if settings.queue == "local" and settings.local_runner:
        app.state.runner = LocalRunner(settings, app.state.session_factory)
    app.state.queue = make_queue(settings, app.state.runner)
    app.state.webhook_dispatcher = None
    if settings.webhook_dispatcher:
        app.state.webhook_dispatcher = WebhookDispatcher(settings, app.state.session_factory)
    install_problem_handlers(app)
    # Every /v1 route needs a valid API key (handlers reuse the cached tenant). Routers carry
    # their full path ("/v1/...") so the metrics' route label is the whole template.
    for router in (
        datasets.router,
        models.router,
        jobs.router,
        job_events.router,
        job_outputs.router,
        evaluations.router,
        job_tools.router,
        webhooks_api.router,
    ):
        app.include_router(router, dependencies=[Depends(current_tenant)])
    app.include_router(health.router)
    # /ui pages do their own cookie-or-bearer auth (browsers cannot send bearer headers).
    app.include_router(ui.router)
    slots = RequestSlots(
        limit=settings.max_concurrent_requests,
        per_owner=settings.max_concurrent_requests_per_tenant,
    )
    app.state.request_slots = slots
    app.state.tenant_cache = TenantCache(settings.auth_cache_seconds)
    app.add_middleware(
        EdgeMiddleware,
        session_factory=app.state.session_factory,
        slots=slots,
        tenant_cache=app.state.tenant_cache,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
        upload_timeout=settings.upload_timeout_seconds,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
