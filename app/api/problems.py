"""Every error response is ``application/problem+json``: {type, title, status, detail, ...}."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import PROBLEM_BASE, PayloadTooLarge, ProblemError, Unauthorized

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_response(
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """One RFC 9457 problem; ``title`` defaults to the status phrase."""
    body = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _domain(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, PayloadTooLarge):
        # The rest of the body is not wanted: close rather than drain it.
        headers["Connection"] = "close"
    return problem_response(
        exc.status, exc.detail, type_=exc.type, title=exc.title, headers=headers, **exc.extra
    )


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, str(exc.detail), headers=headers)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
        for error in exc.errors()
    ]
    return problem_response(
        422,
        "the request is not valid",
        type_=PROBLEM_BASE + "validation-error",
        title="Validation error",
        errors=errors,
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # Log the type and traceback, never request bodies (dataset text stays out of logs).
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return problem_response(500, "internal error", type_=PROBLEM_BASE + "internal-error")


def install_problem_handlers(app: FastAPI) -> None:
    """Render domain errors, HTTP errors, validation errors and crashes as problems."""
    app.add_exception_handler(ProblemError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
