"""``/healthz`` (the process is up), ``/readyz`` (database, migrations, storage), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from app.api.problems import problem_response
from app.db.migrate import is_head
from app.errors import PROBLEM_BASE

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness_checks(request: Request) -> dict[str, str]:
    """Each check's outcome: ``ok`` or a short reason (no secrets, no URLs)."""
    checks: dict[str, str] = {}
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
            checks["migrations"] = "ok" if is_head(connection) else "not at head"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    try:
        request.app.state.store.check_writable()
        checks["storage"] = "ok"
    except OSError as exc:
        checks["storage"] = f"not writable ({type(exc).__name__})"
    return checks


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """200 when the database answers, migrations are at head and storage is writable."""
    checks = readiness_checks(request)
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
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4"
    )
