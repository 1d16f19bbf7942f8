"""Domain errors, each rendered as one RFC 9457 problem (``application/problem+json``).

Free of FastAPI: repositories and the worker raise these; ``app.api.problems`` renders them.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "urn:grait:problem:"


class ProblemError(Exception):
    """An error with an HTTP status, a stable ``slug`` (the problem type) and a detail."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequest(ProblemError):
    status, slug, title = 400, "bad-request", "Bad request"


class InvalidCursor(ProblemError):
    status, slug, title = 400, "invalid-cursor", "Invalid cursor"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class InvalidDataset(ProblemError):
    """A dataset that failed validation: ``errors`` (first 20) and ``n_problems``."""

    status, slug, title = 422, "invalid-dataset", "Invalid dataset"


class UnprocessableRequest(ProblemError):
    status, slug, title = 422, "validation-error", "Validation error"


class RequestTimeout(ProblemError):
    """The client did not send its request body in time (the connection is closed)."""

    status, slug, title = 408, "request-timeout", "Request timeout"


class TooManyRequests(ProblemError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(ProblemError):
    """A dependency (the database) is down; clients retry after ``RETRY_AFTER_SECONDS``."""

    status, slug, title = 503, "service-unavailable", "Service unavailable"


RETRY_AFTER_SECONDS = 5
