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
import socket
import subprocess
import threading
import uuid

from sqlalchemy.orm import Session, sessionmaker

from app.execution import lease
from app.execution.supervise import child_command, kill_group, run_claimed, start_child
from app.settings import Settings

__all__ = ["LocalRunner", "child_command", "kill_group", "start_child"]
log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 2.0


class LocalRunner:
    """One background thread that runs queued jobs one at a time (see the module doc)."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings, self.factory = settings, factory
        self.owner = f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake_event, self.stop_event = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.current: subprocess.Popen[bytes] | None = None

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
        run_claimed(self.factory, self.settings, job_id, self.owner, self.stop_event, self._track)

    def _track(self, process: subprocess.Popen[bytes] | None) -> None:
        self.current = process
