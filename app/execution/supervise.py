"""Supervise one claimed job's child process (shared by the local runner and Celery task).

The runner that holds a job's lease starts ``python -m worker.child <job id> <owner>`` in
its own process group, renews the lease while the child runs, kills the group when a
cancel outlives the grace period, when the lease is lost, when the run outlives
``settings.job_timeout_seconds`` (the job then fails with error code ``timeout``) or when
the runner stops, and finally gives the job back (``lease.release``) unless the child
recorded an outcome. A child that stopped because the database was unreachable (exit
status ``lease.EXIT_DATABASE_UNAVAILABLE``), or a lease lost for the same reason, gives
the job back without using up an attempt. No FastAPI, no torch: the Celery worker's parent
process imports this module.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.execution import lease
from app.execution.transient import retry_transient
from app.jobs.states import JobStatus
from app.settings import Settings

log = logging.getLogger(__name__)
MAX_BEAT_SECONDS = 1.0
# Why ``watch`` stopped a child: these two are the database's fault or a time limit.
DATABASE_UNREACHABLE = "lease lost: the database was unreachable"
TIMED_OUT = "the job ran longer than its time limit"


def child_command(job_id: str, owner: str) -> list[str]:
    """The command that runs one job's stages (``worker/child.py``)."""
    return [sys.executable, "-m", "worker.child", job_id, owner]


def thread_env(settings: Settings) -> dict[str, str]:
    """The OpenMP and MKL thread counts of a job's child (``settings.threads``): read when
    the child first imports torch, so they are set in its environment, not by the child."""
    threads = str(settings.threads)
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def start_child(
    job_id: str, owner: str, settings: Settings, log_dir: Path
) -> subprocess.Popen[bytes]:
    """Start the child in its own process group (so a kill reaches its helpers too), with
    these settings and their thread counts in its environment and its output appended to
    ``log_dir/<job id>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.child_env(), **thread_env(settings)}
    env["GRAIT_PARENT_PID"] = str(os.getpid())
    with (log_dir / f"{job_id}.log").open("ab") as output:
        return subprocess.Popen(
            child_command(job_id, owner),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group and reap the child."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def watch(
    process: subprocess.Popen[bytes],
    factory: sessionmaker[Session],
    job_id: str,
    owner: str,
    settings: Settings,
    stop: threading.Event,
) -> str | None:
    """Heartbeat the lease of ``job_id`` until ``process`` exits or must be stopped.

    Returns None when the child exited by itself, else why it must be killed: the runner
    is stopping (``stop`` set), the lease was lost (another runner owns the job, or the
    database was unreachable for a whole lease period: ``DATABASE_UNREACHABLE``), a cancel
    outlived ``settings.cancel_grace_seconds``, or the run outlived
    ``settings.job_timeout_seconds`` (``TIMED_OUT``). Side effects: renews
    ``lease_expires_at``.
    """
    beat = min(settings.lease_seconds / 4, MAX_BEAT_SECONDS)
    started = last_renewed = time.monotonic()
    cancel_since: float | None = None
    while process.poll() is None:
        if stop.wait(beat):
            return "the runner stopped"
        if time.monotonic() - started > settings.job_timeout_seconds:
            return TIMED_OUT
        try:
            status = lease.heartbeat(factory, job_id, owner, settings.lease_seconds)
        except Exception:
            # A database blip must not kill a long run; only a whole lost lease period does.
            log.warning("heartbeat of job %s failed", job_id, exc_info=True)
            if time.monotonic() - last_renewed > settings.lease_seconds:
                return DATABASE_UNREACHABLE
            continue
        if status is None:
            return "lease lost"
        last_renewed = time.monotonic()
        if status == JobStatus.CANCELLING:
            cancel_since = cancel_since or time.monotonic()
            if time.monotonic() - cancel_since > settings.cancel_grace_seconds:
                return "cancel grace period over"
    return None


def run_claimed(
    factory: sessionmaker[Session],
    settings: Settings,
    job_id: str,
    owner: str,
    stop: threading.Event,
    on_start: Callable[[subprocess.Popen[bytes] | None], None] | None = None,
) -> JobStatus | None:
    """Run a job this runner has claimed (under ``owner``) in a child process, to its end.

    Starts the child, supervises it (``watch``), kills its process group if it must stop,
    then releases the job (or fails it with ``timeout``). ``on_start(process)`` is called
    with the child once started and with None once it is gone (the local runner keeps a
    handle). Returns the job's status after the release (``queued``: run it again;
    ``failed``/``cancelled``), or None when the child recorded the outcome itself (or the
    lease was no longer ours).
    """
    process = start_child(job_id, owner, settings, settings.data_dir / "logs")
    if on_start is not None:
        on_start(process)
    try:
        reason = watch(process, factory, job_id, owner, settings, stop)
    finally:
        if process.poll() is None:
            kill_group(process)
        if on_start is not None:
            on_start(None)
    if reason == TIMED_OUT:
        return _time_out(factory, settings, job_id, owner)
    # Nothing happens if the child recorded its outcome (the lease is gone then).
    database = process.returncode == lease.EXIT_DATABASE_UNAVAILABLE
    if database:
        reason = "the database was unreachable: given back without using an attempt"
    database = database or reason == DATABASE_UNREACHABLE
    reason = reason or f"job process exited {process.returncode}"
    status = retry_transient(
        lambda: lease.release(factory, job_id, owner, reason, use_attempt=not database),
        what=f"release of job {job_id}",
    )
    if status is not None:
        log.warning("job %s given back (%s): now %s", job_id, reason, status)
    return status


def _time_out(
    factory: sessionmaker[Session], settings: Settings, job_id: str, owner: str
) -> JobStatus | None:
    """Fail a job whose run outlived ``settings.job_timeout_seconds`` (its child is killed):
    error code ``timeout``. Returns ``failed``, or None if the job was no longer ours."""
    message = (
        f"the job ran longer than {settings.job_timeout_seconds:g} s, this server's limit "
        "(GRAIT_JOB_TIMEOUT_SECONDS); lower epochs, max_steps or the dataset sizes"
    )
    log.warning("job %s timed out after %g s", job_id, settings.job_timeout_seconds)
    finished = retry_transient(
        lambda: lease.finish(factory, job_id, owner, JobStatus.FAILED, error=("timeout", message)),
        what=f"timeout of job {job_id}",
    )
    return JobStatus.FAILED if finished else None
