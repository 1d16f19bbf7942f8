"""What a client (API, UI page, webhook receiver) may see of a job's recorded error message.

A database error's text carries the SQL statement and its bound parameters (which may hold
dataset text): the worker records ``DATABASE_ERROR_MESSAGE`` instead (``worker.execute``),
and jobs recorded before that rule existed are cleaned when read (``public_message``).
Torch-free and free of ``app.api``: the job's child process uses it too.
"""

from __future__ import annotations

# What SQLAlchemy appends to a database error's text: the statement and its parameters.
SQL_MARKERS = ("[SQL:", "[parameters:")
DATABASE_ERROR_MESSAGE = "a database error stopped the job; the details are in the worker's log"


def public_message(message: str | None) -> str:
    """A job's recorded error message as a client may see it: never an SQL statement or
    its bound parameters."""
    text = message or ""
    return DATABASE_ERROR_MESSAGE if any(marker in text for marker in SQL_MARKERS) else text
