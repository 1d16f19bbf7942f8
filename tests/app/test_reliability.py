"""One session per request, streaming size cap, no orphan file when a write fails, and
jobs that ride out transient database errors (a killed connection mid-write)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.datasets import service
from app.datasets.sink import UploadSink
from app.db.models import Job
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.db.types import utcnow
from app.errors import PayloadTooLarge
from app.execution import lease
from app.execution.recorder import JobRecorder
from app.execution.transient import BACK_OFF, is_transient, retry_transient
from app.jobs.repository import metric_series
from app.jobs.states import JobStatus
from app.storage import ArtifactStore
from tests.app.helpers import (
    MAX_UPLOAD,
    NDJSON,
    assert_nothing_stored,
    assert_problem,
    insert_job,
    new_key,
    open_lines,
    upload_raw,
)


def test_one_session_per_request(client: TestClient, app: FastAPI, auth: dict) -> None:
    factory, opened = app.state.session_factory, []

    def counting_factory():
        opened.append(1)
        return factory()

    app.state.session_factory = counting_factory
    upload_raw(client, auth, open_lines(1))
    client.get("/v1/datasets", headers=auth)
    assert len(opened) == 2


def test_size_cap_is_enforced_while_streaming(client: TestClient, app: FastAPI, auth: dict) -> None:
    chunk = open_lines(100)
    sent = []

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        while sum(sent) <= 3 * MAX_UPLOAD:
            sent.append(len(chunk))
            yield chunk

    response = client.post("/v1/datasets?task=open", content=body(), headers={**auth, **NDJSON})
    assert_problem(response, 413, "payload-too-large")
    assert response.headers["connection"] == "close"  # the rest of the body is not drained
    assert_nothing_stored(client, app, auth)


def test_sink_refuses_the_chunk_that_crosses_the_cap(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(PayloadTooLarge), UploadSink(store, max_bytes=100, task="open") as sink:
        sink.write(b"x" * 60)
        sink.write(b"x" * 60)
    assert sink.size == 120 and list(store.tmp_dir.iterdir()) == []


def test_failed_write_leaves_no_file(
    app: FastAPI, auth: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_add(self, dataset):  # the row cannot be written after the file was stored
        raise RuntimeError("database went away")

    monkeypatch.setattr(service.DatasetRepository, "add", broken_add)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_problem(upload_raw(client, auth, open_lines(2)), 500, "internal-error")
        assert "went away" not in body["detail"]
        monkeypatch.undo()
        assert_nothing_stored(client, app, auth)


# --- Transient database errors (issue 16, item 3) --------------------------------------

OWNER = "runner-1"


def _running_job(app: FastAPI, tenant_id: str, attempt: int = 1) -> str:
    """A ``running`` job of ``tenant_id`` leased by ``OWNER`` on attempt ``attempt``."""
    return insert_job(
        app.state.session_factory,
        tenant_id,
        status=JobStatus.RUNNING,
        attempt=attempt,
        max_attempts=3,
        lease_owner=OWNER,
        lease_expires_at=utcnow() + timedelta(seconds=600),
    )


class ConnectionKiller:
    """A ``before_cursor_execute`` hook that really kills the connection under the next
    statement starting with an armed prefix (once per arming): PostgreSQL terminates the
    backend (``pg_terminate_backend``), SQLite closes the driver's connection. The
    statement then fails as on a lost connection, in the middle of the transaction."""

    def __init__(self, database_url: str) -> None:
        self.database_url, self.armed, self.killed = database_url, set[str](), list[str]()

    def __call__(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        prefix = next((p for p in self.armed if statement.lstrip().startswith(p)), None)
        if prefix is None:
            return
        self.armed.discard(prefix)
        self.killed.append(prefix)
        driver_connection = conn.connection.dbapi_connection
        if self.database_url.startswith("sqlite"):
            driver_connection.close()
            return
        admin = make_url(self.database_url).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False)) as other:
            # The timeout form waits until the backend is gone.
            other.execute(
                "SELECT pg_terminate_backend(%s, 5000)", (driver_connection.info.backend_pid,)
            )


def test_recorder_rides_out_killed_connections(app: FastAPI, database_url: str) -> None:
    """Each kind of recorder write loses its connection mid-transaction once; every write
    is retried on a new connection and the job still succeeds (it used to fail)."""
    _, tenant_id = new_key(app)
    job_id = _running_job(app, tenant_id)
    engine = make_engine(database_url)
    killer = ConnectionKiller(database_url)
    event.listen(engine, "before_cursor_execute", killer)
    try:
        recorder = JobRecorder(make_session_factory(engine), job_id, OWNER)
        killer.armed = {"UPDATE jobs", "INSERT INTO job_events"}
        recorder.progress("train", 1, 4, "step 1")
        killer.armed = {"INSERT INTO job_metrics"}
        recorder.metric("train/loss", 1, 0.5)
        recorder.flush_metrics()
        killer.armed = {"SELECT jobs.status"}
        recorder.last_cancel_check = -1e9
        assert recorder.cancel_requested() is False
        killer.armed = {"UPDATE jobs"}
        assert recorder.finish("succeeded", result={"ok": True})
    finally:
        engine.dispose()
    assert sorted(killer.killed) == sorted(
        [
            "UPDATE jobs",
            "INSERT INTO job_events",
            "INSERT INTO job_metrics",
            "SELECT jobs.status",
            "UPDATE jobs",
        ]
    )
    with unit_of_work(app.state.session_factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.error_code, job.progress_done) == ("succeeded", None, 1)
        assert job.attempt == 1 and job.result == {"ok": True}
    assert metric_series_of(app, job_id) == {"train/loss": [(1, 0.5)]}


def metric_series_of(app: FastAPI, job_id: str) -> dict[str, list[tuple[int, float]]]:
    with unit_of_work(app.state.session_factory) as session:
        return metric_series(session, job_id, None)


def test_is_transient_tells_outages_from_bugs() -> None:
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    lost.connection_invalidated = True
    assert is_transient(lost)
    assert not is_transient(RuntimeError("progress callback failed"))
    wrapped = RuntimeError("callback failed")
    wrapped.__cause__ = lost
    assert is_transient(wrapped)  # an engine callback may wrap the database error
    serialization = OperationalError("UPDATE jobs", {}, _SqlState("40001"))
    assert is_transient(serialization)
    locked = OperationalError("UPDATE jobs", {}, Exception("database is locked"))
    assert is_transient(locked)
    bug = ProgrammingError("SELECT nope", {}, _SqlState("42P01"))
    assert not is_transient(bug)


class _SqlState(Exception):
    """A driver error with a SQLSTATE, as psycopg raises them."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def test_retry_transient_backs_off_then_gives_up() -> None:
    lost = OperationalError("SELECT 1", {}, Exception("gone"))
    lost.connection_invalidated = True
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise lost
        return "done"

    assert retry_transient(flaky, what="test", sleep=slept.append) == "done"
    assert slept == list(BACK_OFF[:2])

    def down() -> str:
        raise lost

    slept.clear()
    with pytest.raises(OperationalError):
        retry_transient(down, what="test", sleep=slept.append)
    assert slept == list(BACK_OFF)


def test_a_database_outage_does_not_use_up_attempts(app: FastAPI) -> None:
    """A run stopped by the database is given back as queued with its attempt uncounted,
    even on the last attempt; a crash on the last attempt still fails the job."""
    _, tenant_id = new_key(app)
    factory = app.state.session_factory
    last = _running_job(app, tenant_id, attempt=3)
    reason = "the database was unreachable"
    assert lease.release(factory, last, OWNER, reason, use_attempt=False) == "queued"
    claim = lease.claim(factory, last, OWNER, 600)
    assert claim is not None and claim.attempt == 3  # the same attempt again
    assert lease.release(factory, last, OWNER, "job process exited -9") == "failed"
    with unit_of_work(factory) as session:
        job = session.get(Job, last)
        assert job is not None and job.error_code == "attempts_exhausted"


def test_job_error_messages_never_show_sql(client: TestClient, app: FastAPI) -> None:
    """A job recorded with a database error's text (as before ``database_error``) shows a
    plain message: no statement, no bound parameters."""
    key, tenant_id = new_key(app)
    job_id = _running_job(app, tenant_id)
    error = OperationalError(
        "UPDATE jobs SET stage=%(stage)s WHERE jobs.id = %(id)s",
        {"stage": "train", "id": "secret-param"},
        Exception("boom"),
    )
    assert lease.finish(
        app.state.session_factory, job_id, OWNER, "failed", error=("stage_error", str(error))
    )
    shown = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert shown["error"]["code"] == "stage_error"
    message = shown["error"]["message"]
    assert "UPDATE" not in message and "secret-param" not in message and "SQL" not in message
    assert "database error" in message
