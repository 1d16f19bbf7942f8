"""One database poller for every open event stream, and the per-tenant stream quota.

Why: each Server-Sent Events stream used to poll the database on its own every half
second, so 500 idle streams made 1,000 queries a second and slowed every other request.
Now an idle stream only waits on an ``asyncio.Event``; one background thread asks the
database, once per ``interval`` for all watched jobs together, for each job's newest event
id and status, and wakes the streams that have something new. A woken stream then reads
its events in one short session. With no stream open the thread exits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, JobEvent
from app.db.session import unit_of_work
from app.jobs.states import TERMINAL_STATUSES

log = logging.getLogger(__name__)


@dataclass
class _Waiter:
    job_id: str
    after: int
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


class EventWatcher:
    """Wakes waiting streams when their job has an event after their cursor or is terminal."""

    def __init__(self, factory: sessionmaker[Session], interval: float) -> None:
        self.factory = factory
        self.interval = interval
        self._lock = threading.Lock()
        self._waiters: dict[int, _Waiter] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    async def wait(self, job_id: str, after: int, timeout: float) -> bool:
        """Wait until ``job_id`` has an event with id > ``after`` or is terminal (True), or
        ``timeout`` seconds pass (False). Holds no database connection while waiting."""
        waiter = _Waiter(job_id, after, asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            token = next(self._tokens)
            self._waiters[token] = waiter
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-watcher")
                self._thread.daemon = True
                self._thread.start()
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                waiters = list(self._waiters.values())
                if not waiters:
                    self._thread = None  # a new waiter starts a new thread
                    return
            try:
                latest = self._latest({waiter.job_id for waiter in waiters})
            except Exception as exc:  # the database is down: the streams wait and retry
                log.warning("event watcher poll failed (%s)", type(exc).__name__)
                latest = {}
            for waiter in waiters:
                newest, terminal = latest.get(waiter.job_id, (0, False))
                if newest > waiter.after or terminal:
                    try:
                        waiter.loop.call_soon_threadsafe(waiter.event.set)
                    except RuntimeError:  # that stream's event loop is closed
                        pass
            time.sleep(self.interval)

    def _latest(self, job_ids: set[str]) -> dict[str, tuple[int, bool]]:
        """job id -> (newest event id, whether the job is terminal), in one short session."""
        ids = sorted(job_ids)
        with unit_of_work(self.factory) as session:
            newest = dict(
                session.execute(
                    select(JobEvent.job_id, func.max(JobEvent.id))
                    .where(JobEvent.job_id.in_(ids))
                    .group_by(JobEvent.job_id)
                ).all()
            )
            statuses = dict(
                session.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all()
            )
        return {
            job_id: (newest.get(job_id) or 0, statuses.get(job_id) in TERMINAL_STATUSES)
            for job_id in ids
        }


class StreamQuota:
    """Open event streams per tenant, at most ``limit`` each (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def try_open(self, tenant_id: str) -> Callable[[], None] | None:
        """A close function (idempotent) for a new stream, or None when the tenant is full."""
        with self._lock:
            count = self._open.get(tenant_id, 0)
            if count >= self.limit:
                return None
            self._open[tenant_id] = count + 1
        closed = False

        def close() -> None:
            nonlocal closed
            with self._lock:
                if closed:
                    return
                closed = True
                remaining = self._open[tenant_id] - 1
                if remaining:
                    self._open[tenant_id] = remaining
                else:
                    del self._open[tenant_id]

        return close

    def open_streams(self, tenant_id: str) -> int:
        with self._lock:
            return self._open.get(tenant_id, 0)
