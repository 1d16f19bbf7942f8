"""``JobRecorder`` against a hand-moved clock (no sleeps), on SQLite and PostgreSQL:
progress throttling (job row every ``ROW_SECONDS``, a ``progress`` event every
``EVENT_SECONDS``, the last step always), the ETA, ``on_stage`` restarting the throttle,
the metric flush interval and ``cancel_requested``'s cached, sticky answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth import create_api_key
from app.db.models import Job, JobEvent, JobMetric
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.execution import lease, recorder
from app.execution.recorder import JobRecorder
from app.jobs.states import JobStatus
from tests.app.helpers import insert_job

OWNER = "runner-1"
Factory = sessionmaker[Session]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def factory(database_url: str) -> Iterator[Factory]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def running_job(factory: Factory) -> str:
    """A ``running`` job of a fresh tenant leased by ``OWNER``; returns its id."""
    with unit_of_work(factory) as session:
        _, key = create_api_key(session, f"t-{uuid.uuid4().hex[:10]}")
        tenant_id = key.tenant_id
    return insert_job(factory, tenant_id, status=JobStatus.RUNNING, attempt=1, lease_owner=OWNER)


def progress_events(factory: Factory, job_id: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(stage, data) of the job's ``progress`` events, oldest first."""
    with unit_of_work(factory) as session:
        rows = session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.type == "progress")
            .order_by(JobEvent.id)
        ).all()
        return [(row.stage, dict(row.data or {})) for row in rows]


def job_progress(factory: Factory, job_id: str) -> tuple[Any, ...]:
    with unit_of_work(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return (job.stage, job.progress_done, job.progress_total, job.eta_seconds)


def test_progress_is_throttled_and_the_last_step_always_written(factory: Factory) -> None:
    job_id, clock = running_job(factory), Clock()
    rec = JobRecorder(factory, job_id, OWNER, clock=clock)
    rec.on_stage("stage_started", "probe", {})  # at 100.0
    rec.progress("probe", 1, 10, "")  # first of the stage: row and event at once
    assert job_progress(factory, job_id) == ("probe", 1, 10, None)  # no time elapsed: no ETA
    clock.now = 100.3
    rec.progress("probe", 2, 10, "")  # within ROW_SECONDS: nothing
    assert job_progress(factory, job_id)[1] == 1
    clock.now = 100.6
    rec.progress("probe", 3, 10, "")  # row (0.6 s / 3 done * 7 left = 1.4 s), no event
    assert job_progress(factory, job_id) == ("probe", 3, 10, 1.4)
    clock.now = 101.4
    rec.progress("probe", 4, 10, "")  # row only: 1.4 s since the last event
    assert job_progress(factory, job_id)[1] == 4
    assert len(progress_events(factory, job_id)) == 1
    clock.now = 101.7
    rec.progress("probe", 5, 10, "")  # within ROW_SECONDS of the last row: nothing
    clock.now = 102.0
    rec.progress("probe", 5, 10, "")  # EVENT_SECONDS since the last event: row and event
    clock.now = 102.1
    rec.progress("probe", 10, 10, "")  # the last step: always, whatever the throttle
    assert job_progress(factory, job_id) == ("probe", 10, 10, 0.0)
    assert progress_events(factory, job_id) == [
        ("probe", {"done": 1, "total": 10, "eta_seconds": None}),
        ("probe", {"done": 5, "total": 10, "eta_seconds": 2.0}),
        ("probe", {"done": 10, "total": 10, "eta_seconds": 0.0}),
    ]


def test_a_new_stage_restarts_the_throttle_and_the_eta(factory: Factory) -> None:
    job_id, clock = running_job(factory), Clock()
    rec = JobRecorder(factory, job_id, OWNER, clock=clock)
    rec.on_stage("stage_started", "probe", {})
    rec.progress("probe", 1, 4, "")
    clock.now += 0.1
    rec.on_stage("stage_finished", "probe", {"seconds": 0.1, "cached": False})
    assert job_progress(factory, job_id)[:3] == ("probe", 1, 4)
    rec.on_stage("stage_started", "train", {})  # the row's stage follows, progress zeroed
    assert job_progress(factory, job_id) == ("train", 0, 0, None)
    clock.now += 0.1
    rec.progress("train", 1, 5, "")  # 0.2 s after the last event, but a new stage
    clock.now += 0.1
    rec.progress("train", 2, 5, "")  # throttled again within the stage
    events = progress_events(factory, job_id)
    assert [(stage, data["done"]) for stage, data in events] == [("probe", 1), ("train", 1)]
    # The ETA counts from the stage's start: 0.1 s for 1 of 5 -> 0.4 s left.
    assert events[-1][1]["eta_seconds"] == 0.4
    assert job_progress(factory, job_id) == ("train", 1, 5, 0.4)


def test_progress_outside_a_stage_counts_its_eta_from_its_first_call(factory: Factory) -> None:
    """Work before the pipeline's stages (the toy world's preparation) has no
    ``stage_started``: its ETA counts from its own first progress, not from the recorder's
    creation."""
    job_id, clock = running_job(factory), Clock()
    rec = JobRecorder(factory, job_id, OWNER, clock=clock)
    clock.now = 150.0
    rec.progress("toyworld", 0, 4, "")
    clock.now = 151.0
    rec.progress("toyworld", 1, 4, "")  # 1 s for 1 of 4 -> 3 s left (not 51 s for 1)
    assert job_progress(factory, job_id) == ("toyworld", 1, 4, 3.0)


def test_progress_of_a_lost_lease_changes_no_row(factory: Factory) -> None:
    job_id, clock = running_job(factory), Clock()
    rec = JobRecorder(factory, job_id, "someone-else", clock=clock)
    rec.progress("probe", 3, 10, "")
    assert job_progress(factory, job_id) == (None, 0, None, None)


def test_metrics_are_flushed_in_batches(factory: Factory) -> None:
    job_id, clock = running_job(factory), Clock()
    rec = JobRecorder(factory, job_id, OWNER, clock=clock)

    def stored() -> list[int]:
        with unit_of_work(factory) as session:
            query = select(JobMetric.step).where(JobMetric.job_id == job_id)
            return sorted(session.scalars(query).all())

    rec.on_stage("stage_started", "train", {})  # flushes (nothing) at 100.0
    rec.metric("train/loss", 1, 0.9)
    clock.now = 100.5
    rec.progress("train", 1, 10, "")  # within METRIC_SECONDS of the last flush: buffered
    assert stored() == []
    rec.metric("train/loss", 2, 0.8)
    clock.now = 101.0
    rec.progress("train", 2, 10, "")
    assert stored() == [1, 2]
    rec.metric("train/loss", 3, 0.7)
    rec.on_stage("stage_finished", "train", {"seconds": 1.0, "cached": False})  # flushes
    assert stored() == [1, 2, 3]


def test_cancel_requested_is_cached_then_sticky(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, clock = running_job(factory), Clock()
    reads: list[str] = []
    real_runs_under = lease.runs_under

    def counting_runs_under(session: Session, job: str, owner: str) -> bool:
        reads.append(job)
        return real_runs_under(session, job, owner)

    monkeypatch.setattr(recorder.lease, "runs_under", counting_runs_under)
    rec = JobRecorder(factory, job_id, OWNER, clock=clock)
    assert rec.cancel_requested() is False and len(reads) == 1
    with unit_of_work(factory) as session:
        assert lease.request_cancel(session, job_id) == JobStatus.CANCELLING
    clock.now += 0.4
    assert rec.cancel_requested() is False and len(reads) == 1  # cached answer
    clock.now += 0.1
    assert rec.cancel_requested() is True and len(reads) == 2  # CANCEL_CHECK_SECONDS later
    clock.now += 10
    assert rec.cancel_requested() is True and len(reads) == 2  # seen once: never read again


def test_a_stage_end_makes_the_next_cancel_check_real(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline checks for a cancel between stages: right after ``stage_finished`` the
    check reads the row even within the throttle interval (a lost lease counts too)."""
    job_id, clock = running_job(factory), Clock()
    rec = JobRecorder(factory, job_id, OWNER, clock=clock)
    assert rec.cancel_requested() is False
    with unit_of_work(factory) as session:  # another runner took the job over
        job = session.get(Job, job_id)
        assert job is not None
        job.lease_owner = "runner-2"
    assert rec.cancel_requested() is False  # same instant: cached
    rec.on_stage("stage_finished", "probe", {"seconds": 0.0, "cached": True})
    assert rec.cancel_requested() is True


def test_unknown_stage_event_is_refused(factory: Factory) -> None:
    rec = JobRecorder(factory, running_job(factory), OWNER, clock=Clock())
    with pytest.raises(ValueError, match="unknown stage event"):
        rec.on_stage("stage_paused", "probe", {})
