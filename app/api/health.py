"""``/healthz`` (the process is up), ``/readyz`` (database, migrations, storage), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine, text

from app.api.deps import EngineDep, HttpMetricsDep, StoreDep
from app.api.problems import problem_response
from app.db.migrate import is_head
from app.errors import PROBLEM_BASE
from app.storage import ArtifactStore

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness_checks(engine: Engine, store: ArtifactStore) -> dict[str, str]:
    """Each check's outcome: ``ok`` or a short reason (no secrets, no URLs)."""
    checks: dict[str, str] = {}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
            checks["migrations"] = "ok" if is_head(connection) else "not at head"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    try:
        store.check_writable()
        checks["storage"] = "ok"
    except OSError as exc:
        checks["storage"] = f"not writable ({type(exc).__name__})"
    return checks


@router.get("/readyz")
def readyz(engine: EngineDep, store: StoreDep) -> JSONResponse:
    """200 when the database answers, migrations are at head and storage is writable."""
    checks = readiness_checks(engine, store)
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    return problem_response(
        503,
        f"not ready: {failing}",
        type_=PROBLEM_BASE + "not-ready",
        title="Service not ready",
        checks=checks,
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(http_metrics: HttpMetricsDep) -> PlainTextResponse:
    return PlainTextResponse(http_metrics.render(), media_type="text/plain; version=0.0.4")
