"""The one spelling of a job's status, of an event's type and of a webhook delivery's status.

``StrEnum``: a member is its plain string value, so the stored column values, the JSON of
the API and of webhooks and the comparisons with rows read back (plain ``str``) are the
same as before the enums existed. Imports nothing, so the service, the worker and the
database models all use it (the CLI keeps a mirror, ``grait_cli.states``, checked by a
test to be equal).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is: ``queued`` -> ``running`` (-> ``cancelling``) -> a terminal status."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def webhook_event(self) -> str:
        """The webhook event name of a move to this status: ``job.<status>``."""
        return f"job.{self.value}"


JOB_STATUSES = tuple(JobStatus)
# A job in one of these has ended for good (only a retry, a new job, runs it again).
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# Jobs that hold (or wait for) a runner; their datasets are in use.
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)
# Jobs a runner owns under a lease.
LEASED_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELLING)
# What a webhook can subscribe to: one event per status.
WEBHOOK_EVENTS = tuple(status.webhook_event for status in JobStatus)


class EventType(StrEnum):
    """The type of a job event (``JobEvent.type``), as emitted; see ``app.jobs.events``."""

    STATUS = "status"
    STAGE_STARTED = "stage_started"
    PROGRESS = "progress"
    STAGE_FINISHED = "stage_finished"
    WARNING = "warning"


class DeliveryStatus(StrEnum):
    """A webhook delivery: ``pending`` until it was ``delivered`` or has ``failed`` for good."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


DELIVERY_STATUSES = tuple(DeliveryStatus)
