"""How the API hands a committed job to whatever runs it (``GRAIT_QUEUE``).

``local``: wake the embedded runner (it also polls, so a lost wake-up only delays).
``celery``: send a message naming the task ``grait.run_job`` with the job id to the broker;
the API never imports the worker package. A message is only a wake-up call: the job row is
the record of truth, and the reaper re-sends jobs that stay queued (a lost message).
"""

from __future__ import annotations

import logging
from typing import Protocol

from app.settings import Settings

log = logging.getLogger(__name__)
RUN_JOB_TASK = "grait.run_job"
GPU_QUEUE = "gpu"
# A broker outage must not hang a request: a few quick tries, then the reaper's turn.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 0.5}


class JobQueue(Protocol):
    def enqueue(self, job_id: str) -> None: ...


class LocalQueue:
    """Wakes the local runner (None: the API runs without one, e.g. tests or API-only)."""

    def __init__(self, runner: object | None) -> None:
        self.runner = runner

    def enqueue(self, job_id: str) -> None:
        wake = getattr(self.runner, "wake", None)
        if wake is not None:
            wake()


class CeleryQueue:
    """Sends ``grait.run_job(job_id)`` to the GPU queue of the Celery broker."""

    def __init__(self, broker_url: str) -> None:
        from celery import Celery

        self.app = Celery("grait-api", broker=broker_url)
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_timeout=2,
            broker_connection_retry_on_startup=True,
            task_ignore_result=True,
        )

    def enqueue(self, job_id: str) -> None:
        """Publish the wake-up message; a broker outage is logged, not raised: the job is
        committed as ``queued`` and the worker's reaper re-sends it (``grait.reap``)."""
        try:
            self.app.send_task(
                RUN_JOB_TASK,
                args=[job_id],
                queue=GPU_QUEUE,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
        except Exception as error:
            log.warning("could not enqueue job %s (the reaper will): %s", job_id, error)


def make_queue(settings: Settings, runner: object | None) -> JobQueue:
    if settings.queue == "celery":
        return CeleryQueue(settings.broker_url.get_secret_value())
    return LocalQueue(runner)
