"""Generate and export requests on tuned jobs through the API, on SQLite and PostgreSQL,
without a runner: 201 with the stored config, 404 for another tenant's job, 409 for a job
without a tuned model, 422 naming the bad field, an Idempotency-Key replay; an open job's
question with choices. The end-to-end reproduction: test_job_tools_reproduce.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.db.models import Job
from app.db.session import unit_of_work
from app.main import create_app
from tests.app.helpers import new_key
from tests.app.job_helpers import job_body, job_settings, upload_world


@pytest.fixture
def api_app(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[FastAPI]:
    """The service without a runner: jobs stay queued."""
    settings = job_settings(tmp_path / "data", database_url, toyworld_dir, local_runner=False)
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


def _auth(app: FastAPI) -> dict[str, str]:
    key, _ = new_key(app)
    return {"Authorization": f"Bearer {key}"}


def _set_status(app: FastAPI, job_id: str, status: str) -> None:
    """Stand-in for a runner: give the job ``status``."""
    with unit_of_work(app.state.session_factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status))


def _problem_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [error["field"] for error in response.json()["errors"]]


def test_requests_are_checked(api_app: FastAPI, toyworld_dir: Path) -> None:
    """201 with the stored config; 404 for another tenant's job; 409 unless a succeeded
    tune job; 422 naming the field for every bound; an Idempotency-Key replays."""
    client, auth, other = TestClient(api_app), _auth(api_app), _auth(api_app)
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        created = client.post("/v1/jobs", json=job_body(ids), headers=auth)
        tune = created.json()
        ask = {"questions": [{"question": "Where was X born?", "choices": ["A1", "B1"]}]}
        gen_url, export_url = f"/v1/jobs/{tune['id']}/generations", f"/v1/jobs/{tune['id']}/exports"

        for url, body in ((gen_url, ask), (export_url, {"merge": True})):
            queued = client.post(url, json=body, headers=auth)
            assert queued.status_code == 409, queued.text
            assert "only a succeeded tune job" in queued.json()["detail"]
            foreign = client.post(url, json=body, headers=other)
            assert foreign.status_code == 404, foreign.text
        _set_status(api_app, tune["id"], "succeeded")
        assert client.post(gen_url, json=ask, headers=other).status_code == 404

        made = client.post(gen_url, json=ask, headers=auth)
        assert made.status_code == 201, made.text
        job = made.json()
        assert (job["kind"], job["status"], job["source_job_id"]) == (
            "generate",
            "queued",
            tune["id"],
        )
        assert job["method"] == "grait" and job["task"] == "choice"
        assert job["config"] == {
            "kind": "generate",
            "model": "toyworld/tiny",
            "task": "choice",
            "source_job_id": tune["id"],
            "questions": ask["questions"],
            "runtime": tune["config"]["runtime"],
        }
        for body in ({"merge": True}, None):
            exported = client.post(export_url, json=body, headers=auth)
            assert exported.status_code == 201, exported.text
            assert exported.json()["kind"] == "export"
            assert exported.json()["config"] == {
                "kind": "export",
                "model": "toyworld/tiny",
                "task": "choice",
                "source_job_id": tune["id"],
                "merge": True,
            }

        key = {**auth, "Idempotency-Key": "ask-1"}
        first = client.post(gen_url, json=ask, headers=key)
        replay = client.post(gen_url, json=ask, headers=key)
        assert first.status_code == 201 and replay.status_code == 200
        assert replay.json()["id"] == first.json()["id"]
        changed = {"questions": [{"question": "Where else?", "choices": ["A1", "B1"]}]}
        assert client.post(gen_url, json=changed, headers=key).status_code == 409

        # A succeeded generate job has no tuned model of its own.
        _set_status(api_app, job["id"], "succeeded")
        again = client.post(f"/v1/jobs/{job['id']}/generations", json=ask, headers=auth)
        assert again.status_code == 409 and "generate job" in again.json()["detail"]

        one = {"question": "Q?", "choices": ["a", "b"]}
        bad = [
            ({"questions": []}, "body.questions"),
            ({"questions": [one] * 21}, "body.questions"),
            ({"questions": [{**one, "question": "   "}]}, "body.questions.0.question"),
            ({"questions": [{**one, "question": "x" * 2001}]}, "body.questions.0.question"),
            ({"questions": [{**one, "choices": ["a"]}]}, "body.questions.0.choices"),
            ({"questions": [{**one, "choices": ["a"] * 11}]}, "body.questions.0.choices"),
            ({"questions": [{**one, "choices": ["a", "b" * 501]}]}, "body.questions.0.choices.1"),
            ({"questions": [{**one, "answer": "A"}]}, "body.questions.0.answer"),
            ({"questions": [one], "extra": 1}, "body.extra"),
            ({"questions": [one, {"question": "No options?"}]}, "questions.1.choices"),
        ]
        for body, field in bad:
            assert field in _problem_fields(client.post(gen_url, json=body, headers=auth)), body
        for body, field in (({"merge": False}, "body.merge"), ({"format": "x"}, "body.format")):
            assert field in _problem_fields(client.post(export_url, json=body, headers=auth))


def test_open_job_questions_have_no_choices(api_app: FastAPI) -> None:
    """An open job's question with choices is a 422 naming ``questions.0.choices``."""
    client, auth = TestClient(api_app), _auth(api_app)
    with client:
        line = json.dumps({"id": "q1", "question": "Where?", "answers": ["Here"]}) + "\n"
        headers = {**auth, "content-type": "application/x-ndjson"}
        dataset = client.post("/v1/datasets?task=open", content=line, headers=headers).json()
        body = {
            "model": "toyworld/tiny",
            "task": "open",
            "training_dataset": dataset["id"],
            "eval_datasets": {"id": dataset["id"]},
            "method": {"type": "van", "n_ik": 1, "n_idk": 1},
        }
        tune = client.post("/v1/jobs", json=body, headers=auth).json()
        _set_status(api_app, tune["id"], "succeeded")
        url = f"/v1/jobs/{tune['id']}/generations"
        wrong = {"questions": [{"question": "Where?", "choices": ["a", "b"]}]}
        assert _problem_fields(client.post(url, json=wrong, headers=auth)) == [
            "questions.0.choices"
        ]
        right = client.post(url, json={"questions": [{"question": "Where?"}]}, headers=auth)
        assert right.status_code == 201 and right.json()["config"]["task"] == "open"
