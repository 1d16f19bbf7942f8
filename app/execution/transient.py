"""Transient database errors: tell them from real failures, and retry them with back-off.

A transient error is one the same statement would not raise a moment later: a lost
connection (a killed backend, a restarted server, a network cut), a serialization failure
or deadlock that PostgreSQL asks the client to retry, too many connections, a busy SQLite
file. Job code retries these (``retry_transient``) and, when they outlast the retries,
gives the job back to the queue without using up an attempt: a database outage must never
fail a job for good (``worker.execute``, ``lease.release``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")
# Seconds between tries: about 15 s of database trouble is ridden out in place.
BACK_OFF = (0.1, 0.3, 1.0, 2.0, 4.0, 8.0)
# SQLSTATE classes: 08 connection exception, 40 transaction rollback (serialization
# failure, deadlock), 53 insufficient resources (too many connections), 57P operator
# intervention (admin shutdown, crash shutdown, cannot connect now).
TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P")
# SQLite: another writer holds the file longer than the driver's busy timeout.
SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and its causes/contexts (an engine callback may wrap the database error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it wraps) is a transient database error."""
    for link in _chain(error):
        if isinstance(link, PoolTimeout):
            return True
        if not isinstance(link, DBAPIError):
            continue
        if link.connection_invalidated:
            return True
        sqlstate = getattr(link.orig, "sqlstate", None) or ""
        if sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES):
            return True
        if any(text in str(link.orig).lower() for text in SQLITE_TRANSIENT):
            return True
    return False


def retry_transient(
    action: Callable[[], T],
    *,
    what: str,
    back_off: tuple[float, ...] = BACK_OFF,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``action()``, tried again after each delay of ``back_off`` while it raises a
    transient database error; the last error (or any other) propagates. Each try must be
    its own unit of work (a fresh session), so a retry never reuses a broken transaction.
    Logs one warning per retry: the error's type only (never SQL or its parameters)."""
    for delay in back_off:
        try:
            return action()
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning(
                "%s: transient database error (%s); retrying in %.1f s",
                what,
                type(error).__name__,
                delay,
            )
            sleep(delay)
    return action()
