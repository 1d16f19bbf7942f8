"""Jobs through the API with the local runner, on SQLite and PostgreSQL: the whole life
cycle on the tiny toy world, cancel while running, retry, idempotent create, pagination."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.helpers import new_key
from tests.app.job_helpers import (
    events,
    finished,
    job_body,
    job_settings,
    retire_leftover_jobs,
    upload_world,
    wait_for,
)

# The runner's defaults for the runtime settings a job leaves unset.
WORKER_RUNTIME = {"batch_size": 4, "memory_budget_mb": 128}


@pytest.fixture
def job_app(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[FastAPI]:
    """The service with its local runner; job children run torch with one thread
    (``GRAIT_TORCH_THREADS``) and the runtime defaults ``WORKER_RUNTIME``."""
    retire_leftover_jobs(database_url)
    # max_epochs: the cancel test trains long enough (400 epochs) to be cancelled mid-way.
    settings = job_settings(
        tmp_path / "data", database_url, toyworld_dir, max_epochs=400, **WORKER_RUNTIME
    )
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def api_app(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[FastAPI]:
    """The service without a runner: jobs stay queued."""
    settings = job_settings(tmp_path / "data", database_url, toyworld_dir, local_runner=False)
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


def _client_and_auth(app: FastAPI) -> tuple[TestClient, dict[str, str]]:
    key, _ = new_key(app)
    return TestClient(app), {"Authorization": f"Bearer {key}"}


def test_job_life_cycle(job_app: FastAPI, toyworld_dir: Path) -> None:
    """Upload, create (config echoed), progress events, succeeded, report, artifacts; the
    child's threads and runtime settings (the job's, then the runner's defaults)."""
    client, auth = _client_and_auth(job_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        body = job_body(ids, runtime={"memory_budget_mb": 256})
        created = client.post("/v1/jobs", json=body, headers=auth)
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["status"] == "queued" and job["object"] == "job"
        config = job["config"]
        assert config["method"]["variant"] == "stratified" and config["method"]["n_ik"] == 16
        assert config["hyperparameters"]["epochs"] == 1 and "lr" in config["hyperparameters"]
        assert config["tau"] == 0.5 and config["features"]["dim"] == 256
        assert config["runtime"] == {
            "batch_size": None,
            "memory_budget_mb": 256,
            "tf32": True,
            "quantization": None,
        }

        done = wait_for(client, auth, job["id"], finished)
        assert done["status"] == "succeeded", done["error"]
        assert done["attempt"] == 1 and done["progress"]["fraction"] == 1.0
        assert set(done["result"]["eval"]) == {"id", "ood"}

        seen = events(client, auth, job["id"])
        started = [e["stage"] for e in seen if e["type"] == "stage_started"]
        assert started == ["probe", "split", "features", "select", "train", "evaluate"]
        progress = [e for e in seen if e["type"] == "progress"]
        assert progress and all(e["data"]["total"] > 0 for e in progress)
        assert [e["data"]["status"] for e in seen if e["type"] == "status"] == [
            "queued",
            "running",
            "succeeded",
        ]

        report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth).json()
        assert report["job"]["id"] == job["id"] and report["eval"] == done["result"]["eval"]
        # The job's own memory budget won; its unset batch size took the runner's default.
        assert report["job"]["config"]["runtime"] == {
            "batch_size": 4,
            "memory_budget_mb": 256,
            "tf32": True,
            "quantization": None,
        }
        log = (job_app.state.settings.data_dir / "logs" / f"{job['id']}.log").read_text()
        assert "device cpu, dtype float32, torch threads 1 (OMP_NUM_THREADS=1)" in log, log
        assert '"batch_size": 4, "memory_budget_mb": 256' in log and "first batch size 4" in log
        names = [
            a["name"]
            for a in client.get(f"/v1/jobs/{job['id']}/artifacts", headers=auth).json()["data"]
        ]
        assert {"report.json", "report.md", "adapter/adapter_model.safetensors"} <= set(names)
        assert "eval/id/tuned/predictions.jsonl" in names
        raw = client.get(f"/v1/jobs/{job['id']}/artifacts/report.json", headers=auth)
        assert raw.status_code == 200 and json.loads(raw.content) == report
        curves = client.get(f"/v1/jobs/{job['id']}/metrics?name=train/loss", headers=auth).json()
        points = curves["data"][0]["points"]
        assert curves["data"][0]["name"] == "train/loss" and len(points) >= 1
        assert [p["step"] for p in points] == sorted({p["step"] for p in points})
        # The report page of a job run by the service (not only of a hand-made folder).
        html = client.get(f"/ui/jobs/{job['id']}", headers=auth).text
        for section_id in ("results", "plane", "curves", "correctness", "weights", "timeline"):
            assert f'<section id="{section_id}">' in html, section_id


def test_stage_events_follow_the_report_cached_stages_included(
    job_app: FastAPI, toyworld_dir: Path
) -> None:
    """Every stage of report.json's ``stages`` is announced by ``stage_started`` then
    ``stage_finished`` carrying the report's seconds and cached flag, in the report's order;
    a second identical job reuses probe, split, features, select and train from the cache
    and still announces each of them."""
    client, auth = _client_and_auth(job_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        for run in ("first", "again"):
            job_id = client.post("/v1/jobs", json=job_body(ids), headers=auth).json()["id"]
            done = wait_for(client, auth, job_id, finished)
            assert done["status"] == "succeeded", done["error"]
            report = client.get(f"/v1/jobs/{job_id}/report", headers=auth).json()
            stages = report["stages"]
            assert list(stages) == ["probe", "split", "features", "select", "train", "evaluate"]
            bounds = [
                (e["type"], e["stage"], e["data"] if e["type"] == "stage_finished" else None)
                for e in events(client, auth, job_id)
                if e["type"] in ("stage_started", "stage_finished")
            ]
            expected = []
            for stage, entry in stages.items():
                reported = {key: value for key, value in entry.items() if key != "compute"}
                expected += [("stage_started", stage, None), ("stage_finished", stage, reported)]
            assert bounds == expected, run
            cached = {stage for stage, entry in stages.items() if entry["cached"]}
            if run == "again":
                assert cached == {"probe", "split", "features", "select", "train"}
            else:
                assert cached == set()


def test_event_stream_resumes_and_ends(job_app: FastAPI, toyworld_dir: Path) -> None:
    """SSE: every event once, in order, from Last-Event-ID on; the stream ends by itself."""
    client, auth = _client_and_auth(job_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        job_id = client.post("/v1/jobs", json=job_body(ids, "cor_rait"), headers=auth).json()["id"]
        with client.stream("GET", f"/v1/jobs/{job_id}/events/stream", headers=auth) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            text = "".join(stream.iter_text())
        streamed = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        assert streamed == events(client, auth, job_id)
        assert streamed[-1]["type"] == "status" and streamed[-1]["data"]["status"] == "succeeded"
        middle = streamed[len(streamed) // 2]["id"]
        headers = {**auth, "Last-Event-ID": str(middle)}
        with client.stream("GET", f"/v1/jobs/{job_id}/events/stream", headers=headers) as stream:
            rest = "".join(stream.iter_text())
        resumed = [int(line[4:]) for line in rest.splitlines() if line.startswith("id: ")]
        assert resumed == [e["id"] for e in streamed if e["id"] > middle]


def test_cancel_while_running_then_retry(job_app: FastAPI, toyworld_dir: Path) -> None:
    """Cancel in the train stage: cancelled, no later stage, child gone; retry re-runs it."""
    client, auth = _client_and_auth(job_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        body = job_body(ids, "cor_rait", epochs=400)
        job_id = client.post("/v1/jobs", json=body, headers=auth).json()["id"]
        wait_for(
            client, auth, job_id, lambda j: j["stage"] == "train" and j["progress"]["done"] > 0
        )
        child = job_app.state.runner.current
        assert child is not None and child.poll() is None
        asked = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).json()
        assert asked["status"] in ("cancelling", "cancelled")
        done = wait_for(client, auth, job_id, finished, timeout=15)
        assert done["status"] == "cancelled"
        assert child.wait(timeout=15) is not None
        started = [e["stage"] for e in events(client, auth, job_id) if e["type"] == "stage_started"]
        assert "evaluate" not in started
        again = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert client.get(f"/v1/jobs/{job_id}/report", headers=auth).status_code == 409

        retried = client.post(f"/v1/jobs/{job_id}/retry", headers=auth)
        assert retried.status_code == 201, retried.text
        new = retried.json()
        assert new["parent_job_id"] == job_id and new["config"] == done["config"]
        assert new["id"] != job_id and new["status"] == "queued"
        client.post(f"/v1/jobs/{new['id']}/cancel", headers=auth)
        wait_for(client, auth, new["id"], finished, timeout=30)


def test_idempotent_create(api_app: FastAPI, toyworld_dir: Path) -> None:
    """Same key and body: the first job (200, replayed); same key, other body: 409."""
    client, auth = _client_and_auth(api_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        keyed = {**auth, "Idempotency-Key": "demo-1"}
        first = client.post("/v1/jobs", json=job_body(ids), headers=keyed)
        again = client.post("/v1/jobs", json=job_body(ids), headers=keyed)
        assert first.status_code == 201 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        other = client.post("/v1/jobs", json=job_body(ids, seed=1), headers=keyed)
        assert other.status_code == 409
        # runtime is part of the request: another value conflicts, an empty one is absent.
        faster = job_body(ids, runtime={"batch_size": 16})
        assert client.post("/v1/jobs", json=faster, headers=keyed).status_code == 409
        empty = client.post("/v1/jobs", json=job_body(ids, runtime={}), headers=keyed)
        assert empty.status_code == 200 and empty.json()["id"] == first.json()["id"]
        unkeyed = [client.post("/v1/jobs", json=job_body(ids), headers=auth) for _ in range(2)]
        assert unkeyed[0].json()["id"] != unkeyed[1].json()["id"]
        listing = client.get("/v1/jobs", headers=auth).json()["data"]
        assert len(listing) == 3
        # Another tenant may use the same key for its own job.
        key2, _ = new_key(api_app)
        auth2 = {"Authorization": f"Bearer {key2}"}
        ids2 = upload_world(client, auth2, toyworld_dir)
        theirs = client.post(
            "/v1/jobs", json=job_body(ids2), headers={**auth2, "Idempotency-Key": "demo-1"}
        )
        assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


def test_pagination_and_status_filter(api_app: FastAPI, toyworld_dir: Path) -> None:
    client, auth = _client_and_auth(api_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        made = [
            client.post("/v1/jobs", json=job_body(ids, seed=i), headers=auth).json()["id"]
            for i in range(5)
        ]
        client.post(f"/v1/jobs/{made[1]}/cancel", headers=auth)
        pages: list[Any] = []
        after = None
        while True:
            query = "limit=2" + (f"&after={after}" if after else "")
            page = client.get(f"/v1/jobs?{query}", headers=auth).json()
            pages.append([job["id"] for job in page["data"]])
            if not page["has_more"]:
                break
            after = pages[-1][-1]
        assert [len(p) for p in pages] == [2, 2, 1]
        assert sum(pages, []) == list(reversed(made))
        cancelled = client.get("/v1/jobs?status=cancelled", headers=auth).json()["data"]
        assert [job["id"] for job in cancelled] == [made[1]]
        queued = client.get("/v1/jobs?status=queued", headers=auth).json()["data"]
        assert len(queued) == 4
