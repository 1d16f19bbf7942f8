"""The job statuses the service reports, mirrored so the CLI stays light (nothing of
``app``); ``tests/cli/test_states.py`` checks this mirror equals ``app.jobs.states``."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's ``status`` in the API's answers (see the service's ``app.jobs.states``)."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A job in one of these has ended: following it stops.
TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
