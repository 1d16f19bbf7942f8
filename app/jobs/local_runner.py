"""The embedded runner: executes queued jobs one at a time, each in a child process.

A thread of the service process loops: release jobs whose lease expired (a runner died),
claim the oldest queued job, start ``python -m worker.child <job id> <owner>`` (the same
job-execution code the Celery worker runs), renew the lease while it runs, and kill its
process group when a cancel outlives the grace period. A child that ends without recording
an outcome (a crash, a kill) gives the job back: queued again, or failed after
``max_attempts`` starts (``lease.release``). On shutdown the running child is stopped and
its job queued again; the next start resumes it from its finished stages and checkpoints.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.jobs import lease
from app.settings import Settings

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 2.0


def child_command(job_id: str, owner: str) -> list[str]:
    """The command that runs one job's stages (``worker/child.py``)."""
    return [sys.executable, "-m", "worker.child", job_id, owner]


def start_child(job_id: str, owner: str, settings: Settings, log_dir: Path) -> subprocess.Popen:
    """Start the child in its own process group (so a kill reaches its helpers too), with
    these settings in its environment and its output appended to ``log_dir/<job id>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.child_env(), "GRAIT_PARENT_PID": str(os.getpid())}
    with (log_dir / f"{job_id}.log").open("ab") as output:
        return subprocess.Popen(
            child_command(job_id, owner), env=env, stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the child's process group and reap the child."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class LocalRunner:
    """One background thread that runs queued jobs one at a time (see the module doc)."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings, self.factory = settings, factory
        self.owner = f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake_event, self.stop_event = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.current: subprocess.Popen | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="grait-local-runner", daemon=True)
        self.thread.start()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self.wake_event.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop; a running child is killed and its job queued again."""
        self.stop_event.set()
        self.wake_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                ran = self._run_next()
            except Exception:
                # A database outage must not end the runner: log, wait, try again.
                log.exception("local runner iteration failed")
                ran = False
            if not ran:
                self.wake_event.wait(IDLE_POLL_SECONDS)
                self.wake_event.clear()

    def _run_next(self) -> bool:
        """Reap, then claim and run the oldest queued job; False when there was none."""
        lease.reap(self.factory)
        job_id = lease.next_queued(self.factory)
        if job_id is None:
            return False
        claim = lease.claim(self.factory, job_id, self.owner, self.settings.lease_seconds)
        if claim is not None:
            self._run(job_id)
        return True

    def _run(self, job_id: str) -> None:
        """Run one claimed job's child to its end, heartbeating and enforcing cancels."""
        process = start_child(job_id, self.owner, self.settings, self.settings.data_dir / "logs")
        self.current = process
        beat = self.settings.lease_seconds / 4
        cancel_since: float | None = None
        reason = None
        while process.poll() is None:
            if self.stop_event.wait(min(beat, 1.0)):
                reason = "the service stopped"
                break
            status = lease.heartbeat(self.factory, job_id, self.owner, self.settings.lease_seconds)
            if status is None:
                reason = "lease lost"
                break
            if status == "cancelling":
                cancel_since = cancel_since or time.monotonic()
                if time.monotonic() - cancel_since > self.settings.cancel_grace_seconds:
                    reason = "cancel grace period over"
                    break
        if process.poll() is None:
            kill_group(process)
        self.current = None
        # Nothing happens if the child recorded its outcome (the lease is gone then).
        lease.release(
            self.factory, job_id, self.owner, reason or f"job process exited {process.returncode}"
        )
