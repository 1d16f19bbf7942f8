"""What a running job writes to the database: stage changes, progress, metrics, notices,
outcome.

Used by the process that runs the stages (the child of the local runner or of a Celery
task). Stage boundaries come from the pipeline itself (``on_stage``: every stage of the
report, cached ones included, with the report's seconds), never from progress calls.
Writes are throttled (progress rows twice a second, progress events every
``EVENT_SECONDS``, metrics in batches; notices are rare and written at once), each write is
its own short transaction, and every UPDATE of the job row is conditional on the lease
owner, so a runner that lost its lease cannot change a job that another runner now owns.
A write that meets a transient database error (a killed connection, a serialization
failure) is tried again with back-off (``transient.retry_transient``); if the trouble
outlasts the retries the error propagates, and ``worker.execute`` gives the job back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import JobMetric
from app.db.session import unit_of_work
from app.execution import lease
from app.execution.transient import retry_transient
from app.jobs.events import add_event
from app.jobs.states import EventType, JobStatus

ROW_SECONDS = 0.5
EVENT_SECONDS = 2.0
METRIC_SECONDS = 1.0
CANCEL_CHECK_SECONDS = 0.5


class JobRecorder:
    """Callbacks for ``run_job`` (``on_stage``, ``progress``, ``on_metric``, ``notice``,
    ``cancel_requested``) that record a job's run under the lease of ``owner``; ``finish``
    records the outcome."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        job_id: str,
        owner: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory, self.job_id, self.owner, self.clock = factory, job_id, owner, clock
        self.stage: str | None = None
        self.stage_started = 0.0
        self.last_row = self.last_event = self.last_metric_flush = self.last_cancel_check = -1e9
        self.metrics: list[tuple[str, int, float]] = []
        self.cancel_seen = False

    def on_stage(self, event: str, stage: str, data: dict[str, Any]) -> None:
        """Record the pipeline's ``stage_started`` (the job row's ``stage`` follows it, its
        progress starts over) or ``stage_finished`` (``data``: the report's entry of the
        stage: ``seconds``, ``cached``...) as an event of that type, at once."""
        self.flush_metrics()
        if event == EventType.STAGE_STARTED:
            self.stage, self.stage_started = stage, self.clock()
            # The first progress of the stage is recorded at once, whatever came before.
            self.last_row = self.last_event = -1e9

            def started(session: Session) -> None:
                add_event(session, self.job_id, EventType.STAGE_STARTED, stage=stage)
                lease.set_progress(session, self.job_id, self.owner, stage, 0, 0, None)

            self._write(started, "stage start")
        elif event == EventType.STAGE_FINISHED:
            self._write(
                lambda session: add_event(
                    session, self.job_id, EventType.STAGE_FINISHED, stage=stage, data=dict(data)
                ),
                "stage end",
            )
            # The pipeline checks for a cancel before the next stage: make that check real.
            self.last_cancel_check = -1e9
        else:
            raise ValueError(f"unknown stage event {event!r}")

    def progress(self, stage: str, done: int, total: int, message: str) -> None:
        """Record progress of ``stage`` (``done`` of ``total``): the job row at most every
        ``ROW_SECONDS``, a ``progress`` event at most every ``EVENT_SECONDS``, both always
        for the last step (``done >= total``). Neither starts nor ends a stage."""
        now = self.clock()
        if stage != self.stage:
            # Work outside the pipeline's stages (the toy world's preparation): its ETA
            # counts from its first progress.
            self.stage, self.stage_started = stage, now
        finished = total > 0 and done >= total
        eta = self._eta(now, done, total)
        if finished or now - self.last_row >= ROW_SECONDS:
            self.last_row = now
            write_event = finished or now - self.last_event >= EVENT_SECONDS
            self.last_event = now if write_event else self.last_event

            def write() -> None:
                with unit_of_work(self.factory) as session:
                    lease.set_progress(session, self.job_id, self.owner, stage, done, total, eta)
                    if write_event:
                        data = {"done": done, "total": total, "eta_seconds": eta}
                        add_event(
                            session,
                            self.job_id,
                            EventType.PROGRESS,
                            stage=stage,
                            message=message,
                            data=data,
                        )

            retry_transient(write, what=f"progress of job {self.job_id}")
        if now - self.last_metric_flush >= METRIC_SECONDS:
            self.flush_metrics()

    def _eta(self, now: float, done: int, total: int) -> float | None:
        elapsed = now - self.stage_started
        if done <= 0 or total <= 0 or elapsed <= 0:
            return None
        return round(elapsed / done * max(total - done, 0), 1)

    def _write(self, work: Callable[[Session], Any], what: str) -> None:
        """``work(session)`` in its own unit of work, retried on transient errors."""

        def attempt() -> None:
            with unit_of_work(self.factory) as session:
                work(session)

        retry_transient(attempt, what=f"{what} of job {self.job_id}")

    def notice(self, stage: str, message: str) -> None:
        """Record something the user should know that is not an error (e.g. a batch halved
        after running out of memory) as a ``warning`` event, at once: never throttled, and
        it neither starts nor ends a stage."""
        self._write(
            lambda session: add_event(
                session, self.job_id, EventType.WARNING, stage=stage, message=message[:2000]
            ),
            "notice",
        )

    def metric(self, name: str, step: int, value: float) -> None:
        """Buffer one metric point (written with the next flush). A NaN or infinite value
        is dropped: SQL and JSON cannot hold it (a diverged run is reported as an error)."""
        if math.isfinite(value):
            self.metrics.append((name, int(step), float(value)))

    def flush_metrics(self) -> None:
        self.last_metric_flush = self.clock()
        if not self.metrics:
            return
        points, self.metrics = self.metrics, []
        # A retry after a commit whose answer was lost may repeat points: harmless, the
        # metric series keeps the newest point of each (name, step).
        self._write(
            lambda session: session.add_all(
                JobMetric(job_id=self.job_id, name=name, step=step, value=value)
                for name, step, value in points
            ),
            "metrics",
        )

    def cancel_requested(self) -> bool:
        """True once the job is ``cancelling`` or this runner lost its lease (throttled)."""
        now = self.clock()
        if self.cancel_seen or now - self.last_cancel_check < CANCEL_CHECK_SECONDS:
            return self.cancel_seen
        self.last_cancel_check = now

        def read() -> bool:
            with unit_of_work(self.factory) as session:
                return lease.runs_under(session, self.job_id, self.owner)

        runs = retry_transient(read, what=f"cancel check of job {self.job_id}")
        self.cancel_seen = not runs
        return self.cancel_seen

    def finish(
        self,
        status: JobStatus,
        *,
        error: tuple[str, str] | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Flush the metrics and end the job (see ``lease.finish``); False if the lease was
        lost.

        A retry after a commit whose answer was lost finds the job no longer owned and
        answers False: the outcome is recorded all the same, nothing runs twice."""
        self.flush_metrics()
        return retry_transient(
            lambda: lease.finish(
                self.factory, self.job_id, self.owner, status, error=error, result=result
            ),
            what=f"outcome of job {self.job_id}",
        )
