"""Evaluation jobs through the API, on SQLite and PostgreSQL: the request checks (201 with
the stored config, 404, 409, 422, idempotency), cancel and retry of a queued evaluation,
and real runs with the local runner on the tiny world: a tuned model's evaluation (its
tuned predictions equal its tune job's, M0's come from the tune job's cache) and a base
model's evaluation with its knowledge histogram.

One tune job per backend (module-scoped ``world``): each tiny job costs seconds here.
Apps with a runner are made only where a job must run, so queued jobs stay queued else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.db.models import Job
from app.db.session import unit_of_work
from app.db.types import new_id
from app.main import create_app
from app.settings import Settings
from tests.app.helpers import assert_problem, choice_lines, new_key, open_lines, upload_raw
from tests.app.job_helpers import (
    events,
    finished,
    job_body,
    job_settings,
    retire_leftover_jobs,
    upload_world,
    wait_for,
)

WORKER_RUNTIME = {"batch_size": 4, "memory_budget_mb": 128}


@dataclass
class World:
    """A tenant with the tiny world uploaded and one succeeded cor_rait tune job."""

    settings: Settings
    database_url: str
    auth: dict[str, str]
    ids: dict[str, str]
    tune_id: str


@contextmanager
def service(world: World, runner: bool) -> Iterator[TestClient]:
    """The service on the world's database and data dir, with or without its runner."""
    if runner:
        retire_leftover_jobs(world.database_url)  # run only what this test queues
    app = create_app(world.settings.model_copy(update={"local_runner": runner}))
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.state.engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, toyworld_dir: Path
) -> World:
    url = request.getfixturevalue(f"{request.param}_url")
    data = tmp_path_factory.mktemp(f"evaluations-{request.param}") / "data"
    settings = job_settings(data, url, toyworld_dir, **WORKER_RUNTIME)
    world = World(settings, url, {}, {}, "")
    with service(world, runner=True) as client:
        key, _ = new_key(client.app)  # type: ignore[arg-type]
        auth = world.auth = {"Authorization": f"Bearer {key}"}
        world.ids = upload_world(client, auth, toyworld_dir)
        created = client.post("/v1/jobs", json=job_body(world.ids, "cor_rait"), headers=auth)
        assert created.status_code == 201, created.text
        done = wait_for(client, auth, created.json()["id"], finished)
        assert done["status"] == "succeeded", done["error"]
        world.tune_id = done["id"]
    return world


def _add_job(client: TestClient, world: World, status: str, kind: str = "tune") -> str:
    """A job row of the world's tenant in ``status`` (no runner needed to get there)."""
    source = client.get(f"/v1/jobs/{world.tune_id}", headers=world.auth).json()
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    with unit_of_work(factory) as session:
        owner = session.get(Job, world.tune_id)
        assert owner is not None
        job = Job(
            id=new_id("job"),
            tenant_id=owner.tenant_id,
            status=status,
            kind=kind,
            model=source["model"],
            method=source["method"],
            task=source["task"],
            config=source["config"],
            max_attempts=1,
        )
        session.add(job)
        return job.id


def _artifact(client: TestClient, auth: dict[str, str], job_id: str, name: str) -> bytes:
    response = client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=auth)
    assert response.status_code == 200, (name, response.text)
    return response.content


def test_requests_are_checked_and_stored(world: World) -> None:
    with service(world, runner=False) as client:
        auth, ids = world.auth, world.ids
        url = f"/v1/jobs/{world.tune_id}/evaluations"
        body = {"eval_datasets": {"again": ids["test_id"], "train": ids["train"]}}
        keyed = {**auth, "Idempotency-Key": "eval-1"}
        created = client.post(url, json=body, headers=keyed)
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["kind"] == "evaluate" and job["source_job_id"] == world.tune_id
        assert job["status"] == "queued" and job["method"] == "cor_rait"
        assert job["config"] == {
            "kind": "evaluate",
            "model": "toyworld/tiny",
            "task": "choice",
            "eval_datasets": body["eval_datasets"],
            "source_job_id": world.tune_id,
            "runtime": {
                "batch_size": None,
                "memory_budget_mb": None,
                "tf32": True,
                "quantization": None,
            },
            "probe": None,
            "seed": 0,
        }
        replay = client.post(url, json=body, headers=keyed)
        assert replay.status_code == 200 and replay.json()["id"] == job["id"]
        other_body = {"eval_datasets": {"again": ids["test_ood"]}}
        assert_problem(client.post(url, json=other_body, headers=keyed), 409)

        # 404: no such job, or another tenant's; 409: not a succeeded tune job.
        assert_problem(client.post("/v1/jobs/job_nope/evaluations", json=body, headers=auth), 404)
        key2, _ = new_key(client.app)  # type: ignore[arg-type]
        theirs = client.post(url, json=body, headers={"Authorization": f"Bearer {key2}"})
        assert_problem(theirs, 404)
        for status, kind in (("failed", "tune"), ("queued", "tune"), ("succeeded", "evaluate")):
            other = _add_job(client, world, status, kind)
            problem = assert_problem(
                client.post(f"/v1/jobs/{other}/evaluations", json=body, headers=auth), 409
            )
            assert status in problem["detail"] and kind in problem["detail"]

        # 422 naming the field: another task's dataset, an unknown one, bad runtime, extras.
        open_id = upload_raw(client, auth, open_lines(3)).json()["id"]
        for sets, field in (
            ({"x": open_id}, "eval_datasets.x"),
            ({"y": "ds_nope"}, "eval_datasets.y"),
        ):
            problem = assert_problem(
                client.post(url, json={"eval_datasets": sets}, headers=auth), 422
            )
            assert problem["errors"][0]["field"] == field, problem
        bad_runtime = {**body, "runtime": {"batch_size": 0}}
        problem = assert_problem(client.post(url, json=bad_runtime, headers=auth), 422)
        assert problem["errors"][0]["field"] == "runtime.batch_size"
        sets = json.dumps({"a": ids["train"]})
        nan = f'{{"eval_datasets": {sets}, "runtime": {{"memory_budget_mb": NaN}}}}'
        problem = assert_problem(
            client.post(url, content=nan, headers={**auth, "content-type": "application/json"}),
            422,
        )
        assert "runtime.memory_budget_mb" in json.dumps(problem)
        assert_problem(client.post(url, json={**body, "method": "x"}, headers=auth), 422)
        too_many = {"eval_datasets": {f"s{i}": ids["train"] for i in range(11)}}
        assert_problem(client.post(url, json=too_many, headers=auth), 422)
        assert_problem(
            client.post(url, json={"eval_datasets": {"bad name": ids["train"]}}, headers=auth), 422
        )

        # The base-model form: the allowlist, the task of its datasets, the stored probe.
        base = {"model": "toyworld/tiny", "task": "choice", "eval_datasets": {"id": ids["test_id"]}}
        made = client.post("/v1/evaluations", json=base, headers=auth)
        assert made.status_code == 201, made.text
        assert made.json()["source_job_id"] is None and made.json()["method"] == "base"
        config = made.json()["config"]
        assert config["source_job_id"] is None and config["probe"]["choice_shots"] == 0
        assert config["probe"]["open_shots"] == 0 and config["kind"] == "evaluate"
        problem = assert_problem(
            client.post("/v1/evaluations", json={**base, "model": "acme/secret"}, headers=auth),
            422,
        )
        assert problem["errors"][0]["field"] == "model"
        problem = assert_problem(
            client.post("/v1/evaluations", json={**base, "task": "open"}, headers=auth), 422
        )
        assert problem["errors"][0]["field"] == "eval_datasets.id"

        # Cancel of a queued evaluation, then retry: a new queued evaluation of the same job.
        cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).json()
        assert cancelled["status"] == "cancelled"
        assert_problem(client.get(f"/v1/jobs/{job['id']}/report", headers=auth), 409)
        retried = client.post(f"/v1/jobs/{job['id']}/retry", headers=auth)
        assert retried.status_code == 201, retried.text
        again = retried.json()
        assert again["kind"] == "evaluate" and again["parent_job_id"] == job["id"]
        assert again["source_job_id"] == world.tune_id and again["config"] == job["config"]
        # A dataset in use by a queued evaluation cannot be deleted.
        in_use = client.delete(f"/v1/datasets/{ids['train']}", headers=auth)
        assert in_use.status_code == 409, in_use.text


def test_tuned_evaluation_reuses_the_tune_jobs_outputs(world: World) -> None:
    """Same dataset as the tune job: tuned predictions equal the tune job's, M0's come
    from the cache the tune job filled; report, events, artifacts and UI page."""
    with service(world, runner=True) as client:
        auth = world.auth
        body = {"eval_datasets": {"again": world.ids["test_id"]}}
        created = client.post(f"/v1/jobs/{world.tune_id}/evaluations", json=body, headers=auth)
        assert created.status_code == 201, created.text
        done = wait_for(client, auth, created.json()["id"], finished)
        assert done["status"] == "succeeded", done["error"]
        job_id = done["id"]
        report = client.get(f"/v1/jobs/{job_id}/report", headers=auth).json()
        assert report["job"]["kind"] == "evaluate" and report["job"]["id"] == job_id
        assert report["job"]["source_job_id"] == world.tune_id
        assert report["job"]["method"] == "cor_rait"
        assert set(report["eval"]["again"]) == {"init_basic", "init_refuse", "tuned"}
        assert report["stages"]["evaluate"]["base_cached"] is True
        assert "knowledge" not in report
        source = client.get(f"/v1/jobs/{world.tune_id}/report", headers=auth).json()
        assert report["eval"]["again"] == source["eval"]["id"]
        for model in ("init_basic", "init_refuse", "tuned"):
            ours = _artifact(client, auth, job_id, f"eval/again/{model}/predictions.jsonl")
            theirs = _artifact(client, auth, world.tune_id, f"eval/id/{model}/predictions.jsonl")
            assert ours == theirs, model
        assert done["result"]["eval"] == report["eval"]
        started = [e["stage"] for e in events(client, auth, job_id) if e["type"] == "stage_started"]
        assert "evaluate" in started and "train" not in started
        assert b"| again | tuned |" in _artifact(client, auth, job_id, "report.md")
        html = client.get(f"/ui/jobs/{job_id}", headers=auth).text
        assert "evaluate" in html and f"/ui/jobs/{world.tune_id}" in html
        assert '<section id="results">' in html and '<section id="plane">' in html
        assert '<section id="knowledge">' not in html


def test_base_model_evaluation_reports_what_it_knows(world: World) -> None:
    """A base model alone: both prompts, no tuned block, the knowledge histogram."""
    with service(world, runner=True) as client:
        auth = world.auth
        extra = upload_raw(client, auth, choice_lines(5), task="choice").json()["id"]
        body = {
            "model": "toyworld/tiny",
            "task": "choice",
            "eval_datasets": {"id": world.ids["test_id"], "extra": extra},
        }
        created = client.post("/v1/evaluations", json=body, headers=auth)
        assert created.status_code == 201, created.text
        done = wait_for(client, auth, created.json()["id"], finished)
        assert done["status"] == "succeeded", done["error"]
        job_id = done["id"]
        report = client.get(f"/v1/jobs/{job_id}/report", headers=auth).json()
        assert report["job"]["method"] == "base" and report["job"]["source_job_id"] is None
        for name, n in (("id", 40), ("extra", 5)):
            assert set(report["eval"][name]) == {"init_basic", "init_refuse"}
            entry = report["knowledge"][name]
            assert entry["n"] == n and sum(entry["counts"]) == n
            assert len(entry["bins"]) == len(entry["counts"]) + 1 == 11
            assert 0 <= entry["known_share"] <= 100 and entry["tau"] == 0.5
            known = json.loads(_artifact(client, auth, job_id, f"knowledge/{name}.json"))
            values = list(known["correctness"].values())
            assert len(values) == n
            assert entry["known_share"] == pytest.approx(100 * sum(v >= 0.5 for v in values) / n)
        # M0 on test_id was cached by the tune job; the new set was not.
        assert report["stages"]["evaluate"]["base_cached"] is False
        assert (
            report["eval"]["id"]["init_basic"]
            == (client.get(f"/v1/jobs/{world.tune_id}/report", headers=auth).json())["eval"]["id"][
                "init_basic"
            ]
        )
        html = client.get(f"/ui/jobs/{job_id}", headers=auth).text
        assert '<section id="knowledge">' in html and '<section id="results">' in html
        assert "<td>init_refuse</td>" in html and "<td>tuned</td>" not in html
        listing = client.get("/ui/jobs", headers=auth).text
        assert "evaluate" in listing
