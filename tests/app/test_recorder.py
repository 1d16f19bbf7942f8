"""``JobRecorder``: a notice becomes a ``warning`` event at once (progress is throttled), and
the events list and the Server-Sent Events stream return it."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.db.models import Job
from app.db.session import unit_of_work
from app.execution.recorder import JobRecorder
from app.jobs.repository import metric_series
from app.jobs.states import JobStatus
from tests.app.helpers import insert_job, new_key

OWNER = "runner-1"
OOM = "out of memory at batch size 8: retrying with 4"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def running_job(app: FastAPI, tenant_id: str) -> str:
    """A ``running`` job of ``tenant_id`` leased by ``OWNER``; returns its id."""
    factory = app.state.session_factory
    return insert_job(factory, tenant_id, status=JobStatus.RUNNING, attempt=1, lease_owner=OWNER)


def event_rows(client: TestClient, auth: dict[str, str], job_id: str) -> list[dict]:
    response = client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_notice_is_written_at_once_even_right_after_progress(
    app: FastAPI, client: TestClient
) -> None:
    key, tenant_id = new_key(app)
    auth = {"Authorization": f"Bearer {key}"}
    job_id = running_job(app, tenant_id)
    clock = Clock()
    recorder = JobRecorder(app.state.session_factory, job_id, OWNER, clock=clock)
    recorder.on_stage("stage_started", "probe", {})
    recorder.progress("probe", 1, 10, "batch 1")
    clock.now += 0.6
    recorder.progress("probe", 2, 10, "batch 2")  # within the event throttle: no event
    before = [e["type"] for e in event_rows(client, auth, job_id)]
    assert before == ["stage_started", "progress"]
    recorder.notice("probe", OOM)  # same instant: still written
    after = event_rows(client, auth, job_id)
    assert len(after) == 3
    warning = after[-1]
    assert (warning["type"], warning["stage"], warning["message"]) == ("warning", "probe", OOM)
    # A notice neither ends the stage nor starts another one.
    recorder.progress("probe", 10, 10, "done")
    types = [e["type"] for e in event_rows(client, auth, job_id)]
    assert types == ["stage_started", "progress", "warning", "progress"]


def test_stage_events_come_from_the_pipeline_not_from_progress(
    app: FastAPI, client: TestClient
) -> None:
    """Progress of a new stage name starts no stage; ``on_stage`` records ``stage_started``
    (the job row's stage follows it) and ``stage_finished`` with the pipeline's data, also
    for a stage without any progress (cached); finishing the job adds no stage event."""
    key, tenant_id = new_key(app)
    auth = {"Authorization": f"Bearer {key}"}
    job_id = running_job(app, tenant_id)
    clock = Clock()
    recorder = JobRecorder(app.state.session_factory, job_id, OWNER, clock=clock)
    recorder.progress("toyworld", 1, 2, "building")
    assert [e["type"] for e in event_rows(client, auth, job_id)] == ["progress"]
    recorder.on_stage("stage_started", "split", {})
    with unit_of_work(app.state.session_factory) as session:
        row = session.get(Job, job_id)
        assert row is not None and row.stage == "split" and row.progress_total == 0
    recorder.on_stage("stage_finished", "split", {"seconds": 0.25, "cached": True})
    assert recorder.finish("succeeded", result={})
    rows = [(e["type"], e["stage"], e["data"]) for e in event_rows(client, auth, job_id)]
    assert rows[1:3] == [
        ("stage_started", "split", None),
        ("stage_finished", "split", {"seconds": 0.25, "cached": True}),
    ]
    assert [row[0] for row in rows[3:]] == ["status"]


def test_warning_events_in_the_list_and_the_stream(app: FastAPI, client: TestClient) -> None:
    key, tenant_id = new_key(app)
    auth = {"Authorization": f"Bearer {key}"}
    job_id = running_job(app, tenant_id)
    recorder = JobRecorder(app.state.session_factory, job_id, OWNER)
    recorder.progress("features", 0, 4, "")
    recorder.notice("features", OOM)
    assert recorder.finish("succeeded", result={})
    listed = event_rows(client, auth, job_id)
    assert [e["type"] for e in listed if e["type"] == "warning"] == ["warning"]
    with client.stream("GET", f"/v1/jobs/{job_id}/events/stream", headers=auth) as stream:
        text = "".join(stream.iter_text())
    assert "event: warning\n" in text
    streamed = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert streamed == listed
    warning = next(e for e in streamed if e["type"] == "warning")
    assert warning["stage"] == "features" and warning["message"] == OOM


def test_non_finite_metric_points_are_dropped(app: FastAPI) -> None:
    """A NaN loss (a diverging run) must not break the metrics flush (SQLite stores NaN as
    NULL and refuses it), which would keep the job's outcome from being recorded."""
    _, tenant_id = new_key(app)
    job_id = running_job(app, tenant_id)
    recorder = JobRecorder(app.state.session_factory, job_id, OWNER, clock=Clock())
    recorder.metric("train/loss", 1, 0.5)
    recorder.metric("train/loss", 2, float("nan"))
    recorder.metric("train/loss", 3, float("inf"))
    assert recorder.finish("failed", error=("diverged", "training diverged"))
    with unit_of_work(app.state.session_factory) as session:
        assert metric_series(session, job_id, None) == {"train/loss": [(1, 0.5)]}
