"""``run_claimed`` (the runner side of a job, local runner and Celery alike), on SQLite and
PostgreSQL, with a stand-in child process instead of ``python -m worker.child``:

- a run longer than ``job_timeout_seconds`` is killed and the job fails with ``timeout``;
- a child that stopped because the database was unreachable (exit status 75) gives the
  job back to the queue without using up an attempt, even on its last attempt;
- any other child that ends without an outcome still uses up its attempt.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.db.models import Job
from app.db.session import unit_of_work
from app.execution import lease, supervise
from app.jobs.states import JobStatus
from app.main import create_app
from app.settings import Settings
from tests.app.helpers import insert_job, new_key

OWNER = "runner-1"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        local_runner=False,
        lease_seconds=3.0,
        job_timeout_seconds=1.0,
    )
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


def _claimed_job(app: FastAPI, attempt: int = 0) -> str:
    """A queued job of a fresh tenant, claimed by ``OWNER`` (its attempt becomes
    ``attempt + 1``)."""
    _, tenant_id = new_key(app)
    job_id = insert_job(
        app.state.session_factory,
        tenant_id,
        status=JobStatus.QUEUED,
        attempt=attempt,
        max_attempts=3,
    )
    assert lease.claim(app.state.session_factory, job_id, OWNER, 600) is not None
    return job_id


def _child(monkeypatch: pytest.MonkeyPatch, script: str) -> list[subprocess.Popen]:
    """Make ``run_claimed`` start ``sh -c script`` (in its own process group) as the child."""
    started: list[subprocess.Popen] = []

    def start(job_id: str, owner: str, settings: Settings, log_dir: Path) -> subprocess.Popen:
        process = subprocess.Popen(["sh", "-c", script], start_new_session=True)
        started.append(process)
        return process

    monkeypatch.setattr(supervise, "start_child", start)
    return started


def _job(app: FastAPI, job_id: str) -> Job:
    with unit_of_work(app.state.session_factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _run(app: FastAPI, job_id: str) -> str | None:
    settings = app.state.settings
    return supervise.run_claimed(
        app.state.session_factory, settings, job_id, OWNER, threading.Event()
    )


def test_a_run_past_the_time_limit_fails_with_timeout(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _child(monkeypatch, "sleep 60")
    job_id = _claimed_job(app)
    assert _run(app, job_id) == "failed"
    assert started[0].poll() is not None  # killed, not left running
    job = _job(app, job_id)
    assert (job.status, job.error_code, job.lease_owner) == ("failed", "timeout", None)
    assert "GRAIT_JOB_TIMEOUT_SECONDS" in (job.error_message or "")


def test_database_unavailable_gives_the_job_back_without_an_attempt(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    _child(monkeypatch, f"exit {lease.EXIT_DATABASE_UNAVAILABLE}")
    job_id = _claimed_job(app, attempt=2)  # its last attempt (3 of 3)
    assert _run(app, job_id) == "queued"
    job = _job(app, job_id)
    assert (job.status, job.attempt, job.error_code) == ("queued", 2, None)


def test_a_crash_still_uses_up_its_attempt(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    _child(monkeypatch, "exit 1")
    job_id = _claimed_job(app, attempt=2)
    assert _run(app, job_id) == "failed"
    assert _job(app, job_id).error_code == "attempts_exhausted"
