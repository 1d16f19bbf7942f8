"""Celery tasks: ``grait.run_job`` (queue ``gpu``) and ``grait.reap`` (queue ``light``).

``run_job(job_id)`` claims the job's lease (owner ``celery:<host>:<pid>:<hex>``), runs its
stages in a child process (``python -m worker.child``: no torch or CUDA in this process),
renews the lease, kills the child's process group after the cancel grace period, and gives
the job back if the child ended without an outcome; a job given back as ``queued`` is sent
again. A message for a job that is not ``queued`` (a duplicate, or already running
elsewhere, or finished) returns at once: delivering a message twice runs the job once.

``reap()`` releases jobs whose lease expired (their runner died) and re-sends them, and
re-sends jobs that stayed ``queued`` too long (their message was lost).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from functools import cache
from typing import Any

from celery.signals import worker_shutting_down
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import make_engine, make_session_factory
from app.execution import lease
from app.execution.queue import GPU_QUEUE, PUBLISH_RETRY, RUN_JOB_TASK
from app.execution.supervise import run_claimed
from app.execution.transient import retry_transient
from app.jobs.states import JobStatus
from worker.celery_app import REAP_TASK, app, settings

log = logging.getLogger(__name__)
# Set when the worker shuts down (SIGTERM): the running child is stopped, its job queued.
STOP = threading.Event()


@worker_shutting_down.connect
def _on_shutdown(**_: Any) -> None:
    # Runs in a signal handler, possibly while this thread waits on STOP: setting it from
    # another thread avoids re-entering the event's lock.
    threading.Thread(target=STOP.set, name="grait-stop").start()


@cache
def session_factory() -> sessionmaker[Session]:
    """This process's session factory (one engine per worker process)."""
    return make_session_factory(make_engine(settings.database_url))


def new_owner() -> str:
    """A lease owner id unique to this run: ``celery:<host>:<pid>:<8 hex>``."""
    return f"celery:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def enqueue(job_id: str) -> bool:
    """Send ``grait.run_job(job_id)`` to the gpu queue; False (logged) if the broker is down
    (the job stays ``queued`` and a later reap sends it)."""
    try:
        app.send_task(
            RUN_JOB_TASK, args=[job_id], queue=GPU_QUEUE, retry=True, retry_policy=PUBLISH_RETRY
        )
    except Exception as error:
        log.warning("could not enqueue job %s: %s", job_id, error)
        return False
    return True


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> str:
    """Run job ``job_id`` if it is queued; returns what happened (results are ignored):
    ``not claimed``, ``recorded`` (the child recorded the outcome) or the status after
    giving the job back (``queued`` is re-sent). Side effects: job row, child process."""
    factory = session_factory()
    owner = new_owner()
    # A database blip must not drop the message's job: it would wait for the stale-queue
    # resend (resend_queued_after_seconds) instead.
    claim = retry_transient(
        lambda: lease.claim(factory, job_id, owner, settings.lease_seconds),
        what=f"claim of job {job_id}",
    )
    if claim is None:
        log.info("job %s not claimed (not queued: finished or running elsewhere)", job_id)
        return "not claimed"
    log.info("job %s attempt %d started by %s", job_id, claim.attempt, owner)
    status = run_claimed(factory, settings, job_id, owner, STOP)
    if status == JobStatus.QUEUED:
        enqueue(job_id)
    return status or "recorded"


@app.task(name=REAP_TASK)
def reap() -> dict[str, list[str]]:
    """Requeue jobs whose lease expired (failing those out of attempts) and re-send them
    and the jobs queued too long; returns ``{requeued, resent}`` job ids."""
    factory = session_factory()
    requeued = lease.reap(factory)
    stale = lease.touch_stale_queued(factory, settings.resend_queued_after_seconds)
    for job_id in dict.fromkeys(requeued + stale):
        enqueue(job_id)
    if requeued or stale:
        log.warning("reaper: requeued %s, re-sent stale %s", requeued, stale)
    return {"requeued": requeued, "resent": stale}
