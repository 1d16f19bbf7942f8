"""Engines and sessions: one session per unit of work, committed once.

``unit_of_work`` commits at the end (or rolls back on error) and then runs the hooks
registered with ``after_commit`` / ``after_rollback``: file-system side effects that must
follow the database outcome (remove a deleted dataset's file only once the delete is
committed; remove a stored file when its row could not be committed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

Hook = Callable[[], None]
log = logging.getLogger(__name__)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and cross-thread use allowed."""
    if url.startswith("sqlite"):
        if make_url(url).database in (None, "", ":memory:"):
            # One shared in-memory database: its pool takes no sizing arguments.
            kwargs = {k: v for k, v in kwargs.items() if k not in ("pool_size", "max_overflow")}
        connect_args = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects stay readable after the single commit.
    return sessionmaker(bind=engine, expire_on_commit=False)


def after_commit(session: Session, hook: Hook) -> None:
    """Run ``hook`` once the session's unit of work has committed."""
    session.info.setdefault("after_commit", []).append(hook)


def after_rollback(session: Session, hook: Hook) -> None:
    """Run ``hook`` if the session's unit of work rolls back (or its commit fails)."""
    session.info.setdefault("after_rollback", []).append(hook)


def _run_hooks(session: Session, name: str) -> None:
    # The database outcome is final: a failing hook is logged, it does not undo or mask it.
    for hook in session.info.pop(name, []):
        try:
            hook()
        except Exception:
            log.exception("%s hook failed", name)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed once at the end; rolled back if the block (or commit) fails."""
    session = factory()
    try:
        yield session
    except BaseException:
        finish(session, failed=True)
        raise
    finish(session, failed=False)


def finish(session: Session, *, failed: bool) -> None:
    """End ``session``'s unit of work: commit (or, when ``failed`` or the commit fails, roll
    back), run the matching hooks, close. Re-raises a failed commit."""
    try:
        if failed:
            raise _Failed
        session.commit()
    except BaseException as error:
        session.rollback()
        _run_hooks(session, "after_rollback")
        if not isinstance(error, _Failed):
            raise
    else:
        _run_hooks(session, "after_commit")
    finally:
        session.info.clear()
        session.close()


class _Failed(Exception):
    """The block of a unit of work raised: roll back (internal to ``finish``)."""


def rows_changed(session: Session, statement: Any) -> int:
    """Execute an UPDATE/DELETE and return how many rows it changed (conditional updates
    use this to know whether their WHERE clause still matched)."""
    result = cast("CursorResult[Any]", session.execute(statement))
    return int(result.rowcount)


def is_database_outage(error: BaseException) -> bool:
    """True for errors that say the database cannot be reached or used right now (refused or
    lost connections, an exhausted pool, a locked SQLite file), as opposed to a bug or a
    constraint violation: the service answers 503 with ``Retry-After`` for these."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    outage_types = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
    return isinstance(error, outage_types)
