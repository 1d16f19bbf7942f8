"""Every error response is ``application/problem+json``: {type, title, status, detail, ...}."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.db.session import is_database_outage
from app.errors import (
    PROBLEM_BASE,
    RETRY_AFTER_SECONDS,
    PayloadTooLarge,
    ProblemError,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)

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
    return problem_of(exc)


def problem_of(exc: ProblemError) -> JSONResponse:
    """The problem response of a domain error, with the headers its status calls for."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, PayloadTooLarge | RequestTimeout):
        # The rest of the body is not wanted: close rather than drain it.
        headers["Connection"] = "close"
    if isinstance(exc, ServiceUnavailable | TooManyRequests):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
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


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("the database is unavailable; retry later")


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """503 with ``Retry-After`` when the database is down; any other database error is a bug."""
    if not is_database_outage(exc):
        return await _unexpected(request, exc)
    # The type only: driver messages can hold SQL, parameters or the database URL.
    log.warning("database unavailable (%s)", type(exc).__name__)
    return problem_of(database_unavailable())


async def _client_disconnect(request: Request, _exc: Exception) -> JSONResponse:
    """The client went away mid-body (a dropped upload): not a server error, no traceback.

    The response is never delivered; 499 (the nginx convention) labels it in the metrics.
    """
    log.info("client disconnected before the request body was complete: %s", request.url.path)
    return problem_response(
        499,
        "client closed the request",
        type_=PROBLEM_BASE + "client-disconnected",
        title="Client closed request",
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render domain errors, HTTP errors, validation errors and crashes as problems."""
    app.add_exception_handler(ProblemError, _domain)
    app.add_exception_handler(sa_exc.DBAPIError, _database)
    app.add_exception_handler(sa_exc.TimeoutError, _database)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
