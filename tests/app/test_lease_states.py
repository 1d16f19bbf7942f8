"""The run store's state table (``app.execution.lease``) on SQLite and PostgreSQL: for a job row
in a given status, lease owner/expiry and attempt, each operation's answer, the row's
status afterwards and the ``status`` events it wrote. A refused operation changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.auth import create_api_key
from app.db.models import Job, JobEvent
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.db.types import utcnow
from app.execution import lease
from app.jobs.states import JobStatus
from tests.app.helpers import insert_job

OWNER, OTHER = "runner-a", "runner-b"
Factory = sessionmaker[Session]


@pytest.fixture
def factory(database_url: str) -> Iterator[Factory]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass(frozen=True)
class Row:
    """A job row to start from: ``expires_in`` seconds of lease left (negative: expired)."""

    status: JobStatus
    owner: str | None = None
    expires_in: float | None = None
    attempt: int = 0
    max_attempts: int = 3


QUEUED = Row(JobStatus.QUEUED)
LIVE = Row(JobStatus.RUNNING, OWNER, 600, attempt=1)
CANCELLING = Row(JobStatus.CANCELLING, OWNER, 600, attempt=1)
EXPIRED = Row(JobStatus.RUNNING, OWNER, -60, attempt=1)
EXPIRED_LAST = Row(JobStatus.RUNNING, OWNER, -60, attempt=3)
EXPIRED_CANCELLING = Row(JobStatus.CANCELLING, OWNER, -60, attempt=1)
SUCCEEDED = Row(JobStatus.SUCCEEDED)
FAILED = Row(JobStatus.FAILED)
CANCELLED = Row(JobStatus.CANCELLED)


def add_job(factory: Factory, row: Row) -> str:
    """A job of a fresh tenant in the state ``row``; returns its id."""
    expires = None if row.expires_in is None else utcnow() + timedelta(seconds=row.expires_in)
    with unit_of_work(factory) as session:
        _, key = create_api_key(session, f"t-{uuid.uuid4().hex[:10]}")
        tenant_id = key.tenant_id
    return insert_job(
        factory,
        tenant_id,
        status=row.status,
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        lease_owner=row.owner,
        lease_expires_at=expires,
    )


def in_session(work: Callable[[Session, str], Any]) -> Callable[[Factory, str], Any]:
    """An operation that runs in the caller's unit of work, as a ``(factory, id)`` call."""

    def run(factory: Factory, job_id: str) -> Any:
        with unit_of_work(factory) as session:
            return work(session, job_id)

    return run


def claim_attempt(factory: Factory, job_id: str) -> int | None:
    claimed = lease.claim(factory, job_id, OTHER, 600)
    return None if claimed is None else claimed.attempt


def reaped(factory: Factory, job_id: str) -> bool:
    """Whether ``reap`` handed this job back to the queue (other tests' rows may be there)."""
    return job_id in lease.reap(factory)


FAIL = ("stage_error", "ValueError: boom")
OPS: dict[str, Callable[[Factory, str], Any]] = {
    "claim": claim_attempt,
    "renew": lambda f, j: lease.heartbeat(f, j, OWNER, 600),
    "renew_other": lambda f, j: lease.heartbeat(f, j, OTHER, 600),
    "finish_ok": lambda f, j: lease.finish(f, j, OWNER, JobStatus.SUCCEEDED, result={"a": 1}),
    "finish_failed": lambda f, j: lease.finish(f, j, OWNER, JobStatus.FAILED, error=FAIL),
    "finish_other": lambda f, j: lease.finish(f, j, OTHER, JobStatus.SUCCEEDED, result={}),
    "release": lambda f, j: lease.release(f, j, OWNER, "job process exited -9"),
    "release_other": lambda f, j: lease.release(f, j, OTHER, "job process exited -9"),
    "release_db": lambda f, j: lease.release(f, j, OWNER, "db down", use_attempt=False),
    "cancel": in_session(lease.request_cancel),
    "runs_under": in_session(lambda s, j: lease.runs_under(s, j, OWNER)),
    "reap": reaped,
}

# (row, operation) -> (answer, status after, status events written (their data.status),
# attempt after, lease owner after)
Q, R, CG = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING
S, F, C = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED
TABLE = [
    # claim: only a queued job; attempt + 1, lease to the claimer
    (QUEUED, "claim", 1, R, [R], 1, OTHER),
    (LIVE, "claim", None, R, [], 1, OWNER),
    (EXPIRED, "claim", None, R, [], 1, OWNER),  # an expired lease is reaped, not stolen
    (SUCCEEDED, "claim", None, S, [], 0, None),
    # renew: only the owner of a leased job; answers the status
    (LIVE, "renew", R, R, [], 1, OWNER),
    (CANCELLING, "renew", CG, CG, [], 1, OWNER),
    (LIVE, "renew_other", None, R, [], 1, OWNER),
    (QUEUED, "renew", None, Q, [], 0, None),
    # finish: the owner ends it (lease cleared); a non-owner is refused, the row unchanged
    (LIVE, "finish_ok", True, S, [S], 1, None),
    (LIVE, "finish_failed", True, F, [F], 1, None),
    (CANCELLING, "finish_ok", True, S, [S], 1, None),
    (LIVE, "finish_other", False, R, [], 1, OWNER),
    (QUEUED, "finish_ok", False, Q, [], 0, None),
    (CANCELLED, "finish_ok", False, C, [], 0, None),
    # release (a run without an outcome): requeue, fail at max attempts, cancel if asked
    (LIVE, "release", Q, Q, [Q], 1, None),
    (Row(R, OWNER, 600, attempt=3), "release", F, F, [F], 3, None),
    (CANCELLING, "release", C, C, [C], 1, None),
    (LIVE, "release_other", None, R, [], 1, OWNER),
    (Row(R, OWNER, 600, attempt=3), "release_db", Q, Q, [Q], 2, None),
    # cancel: queued -> cancelled at once, running -> cancelling, else nothing
    (QUEUED, "cancel", C, C, [C], 0, None),
    (LIVE, "cancel", CG, CG, [CG], 1, OWNER),
    (CANCELLING, "cancel", None, CG, [], 1, OWNER),
    (SUCCEEDED, "cancel", None, S, [], 0, None),
    (FAILED, "cancel", None, F, [], 0, None),
    (CANCELLED, "cancel", None, C, [], 0, None),
    # runs_under: running under this owner only
    (LIVE, "runs_under", True, R, [], 1, OWNER),
    (CANCELLING, "runs_under", False, CG, [], 1, OWNER),
    (Row(R, OTHER, 600, attempt=1), "runs_under", False, R, [], 1, OTHER),
    # reap: expired leases only; requeued, failed at max attempts, cancelled if asked
    (EXPIRED, "reap", True, Q, [Q], 1, None),
    (EXPIRED_LAST, "reap", False, F, [F], 3, None),
    (EXPIRED_CANCELLING, "reap", False, C, [C], 1, None),
    (LIVE, "reap", False, R, [], 1, OWNER),
]


def table_id(case: tuple) -> str:
    row, op = case[0], case[1]
    return f"{op}-{row.status}-{row.owner}-{row.expires_in}-{row.attempt}"


@pytest.mark.parametrize("case", TABLE, ids=[table_id(case) for case in TABLE])
def test_lease_state_table(factory: Factory, case: tuple) -> None:
    row, op, answer, status, events, attempt, owner = case
    job_id = add_job(factory, row)
    assert OPS[op](factory, job_id) == answer
    with unit_of_work(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.attempt, job.lease_owner) == (status, attempt, owner)
        assert (job.lease_expires_at is None) == (owner is None)
        written = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
        assert [(e.type, (e.data or {}).get("status")) for e in written] == [
            ("status", str(s)) for s in events
        ]
        if status in (S, F, C) and row.status not in (S, F, C):
            assert job.finished_at is not None
        if op == "finish_failed":
            assert (job.error_code, job.error_message) == FAIL
        if status == F and op in ("release", "reap"):
            assert job.error_code == "attempts_exhausted"
            assert "gave up after 3 attempts" in (job.error_message or "")
        if op == "finish_ok" and answer:
            assert job.result == {"a": 1} and job.error_code is None


def test_claim_records_start_once_and_clears_an_old_error(factory: Factory) -> None:
    """The first claim sets ``started_at``; a re-claim after a requeue keeps it and counts
    the next attempt; the claim's event carries the attempt."""
    job_id = add_job(factory, QUEUED)
    assert claim_attempt(factory, job_id) == 1
    with unit_of_work(factory) as session:
        first = session.get(Job, job_id)
        assert first is not None and first.started_at is not None
        started = first.started_at
        session.execute(update(Job).where(Job.id == job_id).values(error_code="x"))
    assert lease.release(factory, job_id, OTHER, "crash") == Q
    assert claim_attempt(factory, job_id) == 2
    with unit_of_work(factory) as session:
        again = session.get(Job, job_id)
        assert again is not None and again.started_at == started and again.error_code is None
        data = [e.data for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id))]
    assert [d["attempt"] for d in data if d and d.get("status") == R] == [1, 2]


def test_set_progress_only_under_the_lease(factory: Factory) -> None:
    job_id = add_job(factory, LIVE)
    with unit_of_work(factory) as session:
        lease.set_progress(session, job_id, OTHER, "probe", 9, 10, 1.0)  # not the owner
        lease.set_progress(session, job_id, OWNER, "train", 3, 8, 12.5)
        lease.set_progress(session, job_id, OTHER, "probe", 9, 10, 1.0)
    with unit_of_work(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.stage, job.progress_done, job.progress_total, job.eta_seconds) == (
            "train",
            3,
            8,
            12.5,
        )


def test_touch_stale_queued_resends_each_stale_job_once(factory: Factory) -> None:
    stale, fresh = add_job(factory, QUEUED), add_job(factory, QUEUED)
    running = add_job(factory, LIVE)
    old = utcnow() - timedelta(seconds=120)
    with unit_of_work(factory) as session:
        session.execute(update(Job).where(Job.id.in_([stale, running])).values(updated_at=old))
    first = lease.touch_stale_queued(factory, 60)
    assert stale in first and fresh not in first and running not in first
    assert stale not in lease.touch_stale_queued(factory, 60)  # touched: not again so soon
