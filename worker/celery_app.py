"""The Celery application of the GPU workers (``celery -A worker.celery_app worker``).

Settings come from the environment (``GRAIT_*``, see ``WorkerSettings``). The broker is
Redis; a message is only a wake-up call carrying a job id, the job row is the record of
truth. Settings chosen for long GPU work:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only once
  its task returned, so a killed worker's message comes back (after the visibility timeout);
- ``worker_prefetch_multiplier=1``: a busy worker holds no second job's message;
- ``visibility_timeout`` longer than the longest stage, else Redis would hand a running
  job's message to another worker (harmless thanks to the lease, but wasteful);
- JSON only, results ignored (outcomes live in the database).

Queues: ``gpu`` (``grait.run_job``, one at a time per GPU) and ``light`` (``grait.reap``,
sent by the beat schedule every ``reap_interval_seconds``).
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue
from pydantic import Field

from app.execution.queue import GPU_QUEUE, RUN_JOB_TASK
from app.settings import Settings

LIGHT_QUEUE = "light"
REAP_TASK = "grait.reap"


class WorkerSettings(Settings):
    """The service settings plus the worker's own knobs (``GRAIT_*`` like the others)."""

    # Longer than the longest stage: Redis re-delivers unacknowledged messages after it.
    visibility_timeout_seconds: float = Field(default=12 * 3600.0, gt=0)
    # How often the beat schedule sends ``grait.reap``.
    reap_interval_seconds: float = Field(default=30.0, gt=0)
    # A job still queued this long after its last change is sent to the broker again
    # (its message was lost: broker restart, crash between commit and publish).
    resend_queued_after_seconds: float = Field(default=300.0, gt=0)


def make_celery(settings: WorkerSettings) -> Celery:
    """A configured Celery app for ``settings`` (tasks registered by ``worker.tasks``)."""
    broker = settings.broker_url.get_secret_value()
    app = Celery("grait-worker", broker=broker, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        broker_transport_options={"visibility_timeout": int(settings.visibility_timeout_seconds)},
        # Keep running (the lease protects the job) and reconnect forever on broker loss.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_queues=[Queue(GPU_QUEUE), Queue(LIGHT_QUEUE)],
        task_default_queue=LIGHT_QUEUE,
        task_routes={RUN_JOB_TASK: {"queue": GPU_QUEUE}, REAP_TASK: {"queue": LIGHT_QUEUE}},
        beat_schedule={
            "reap-expired-leases": {
                "task": REAP_TASK,
                "schedule": settings.reap_interval_seconds,
                # A reap that waited longer than one interval is superseded by the next.
                "options": {"queue": LIGHT_QUEUE, "expires": settings.reap_interval_seconds},
            }
        },
    )
    return app


settings = WorkerSettings()
app = make_celery(settings)
