"""Bad job requests: each gets the right 4xx problem and stores nothing.

Dataset upload problems (malformed JSONL, wrong task, oversize...) are covered in
``test_bad_uploads.py``; this file covers jobs, events, artifacts and auth.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.helpers import assert_problem, choice_lines, new_key, open_lines, upload_raw
from tests.app.job_helpers import job_body, job_settings


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """An API-only service, a tenant with one open and two choice datasets, another tenant
    with a choice dataset and a job. No toy world is needed: jobs are never run here."""
    settings = job_settings(tmp_path / "data", database_url, tmp_path / "tw", local_runner=False)
    app = create_app(settings)
    with TestClient(app) as client:
        key, _ = new_key(app)
        auth = {"Authorization": f"Bearer {key}"}
        ids = {
            "train": upload_raw(client, auth, choice_lines(4), "choice").json()["id"],
            "test_id": upload_raw(client, auth, choice_lines(3), "choice").json()["id"],
            "test_ood": upload_raw(client, auth, choice_lines(3), "choice").json()["id"],
            "open": upload_raw(client, auth, open_lines(3), "open").json()["id"],
        }
        other_key, _ = new_key(app)
        other = {"Authorization": f"Bearer {other_key}"}
        other_ds = upload_raw(client, other, choice_lines(2), "choice").json()["id"]
        other_ids = {"train": other_ds, "test_id": other_ds, "test_ood": other_ds}
        other_job = client.post("/v1/jobs", json=job_body(other_ids), headers=other).json()["id"]
        yield {
            "app": app,
            "client": client,
            "auth": auth,
            "ids": ids,
            "other_ds": other_ds,
            "other_job": other_job,
        }
    app.state.engine.dispose()


def _body(ids: dict[str, str], **changes: Any) -> dict[str, Any]:
    body = job_body(ids)
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


# (name, changes to a good body, field named in errors); each answers 422 validation-error
BAD_CREATES = [
    ("unknown model", {"model": "acme/nope"}, "model"),
    ("unknown dataset", {"training_dataset": "ds_000000000000000000000000"}, "training_dataset"),
    ("wrong task type", {"task": "open"}, "training_dataset"),
    ("unknown method", {"method": {"type": "magic"}}, "method.type"),
    (
        "grait knob on cor_rait",
        {"method": {"type": "cor_rait", "temperature": 2}},
        "method.temperature",
    ),
    ("bad training knob", {"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs"),
    ("unknown training knob", {"hyperparameters": {"epochz": 3}}, "hyperparameters.epochz"),
    ("bad tau", {"tau": 1.5}, "tau"),
    # A wrong-typed knob names its field (it used to be a bare TypeError naming the section).
    ("features lr a string", {"features": {"lr": "x"}}, "features.lr"),
    ("features lora_r a float", {"features": {"lora_r": 8.0}}, "features.lora_r"),
    ("features betas a string", {"features": {"adam_betas": "ab"}}, "features.adam_betas"),
    ("epochs a bool", {"hyperparameters": {"epochs": True}}, "hyperparameters.epochs"),
    ("training lr a list", {"hyperparameters": {"lr": [0.001]}}, "hyperparameters.lr"),
    (
        "target modules a string",
        {"hyperparameters": {"target_modules": "q_proj"}},
        "hyperparameters.target_modules",
    ),
    ("probe samples a string", {"probe": {"n_samples": "10"}}, "probe.n_samples"),
    ("batch size 0", {"runtime": {"batch_size": 0}}, "runtime.batch_size"),
    ("memory budget a string", {"runtime": {"memory_budget_mb": "1G"}}, "runtime.memory_budget_mb"),
    ("tf32 not a bool", {"runtime": {"tf32": "yes"}}, "runtime.tf32"),
    ("unknown quantization", {"runtime": {"quantization": "8bit"}}, "runtime.quantization"),
    ("unknown runtime key", {"runtime": {"threads": 4}}, "runtime.threads"),
    ("runtime not a mapping", {"runtime": [8]}, "body.runtime"),
    ("negative seed", {"seed": -1}, "body.seed"),
    ("unknown top-level key", {"colour": "red"}, "body.colour"),
    ("missing eval datasets", {"eval_datasets": None}, "body.eval_datasets"),
    ("hostile eval set name", {"eval_datasets": {"../x": "ds_1"}}, None),
]


@pytest.mark.parametrize(("name", "changes", "field"), BAD_CREATES)
def test_bad_create_stores_nothing(
    world: dict[str, Any], name: str, changes: dict, field: str | None
) -> None:
    client, auth = world["client"], world["auth"]
    response = client.post("/v1/jobs", json=_body(world["ids"], **changes), headers=auth)
    body = assert_problem(response, 422, "validation-error")
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


def test_other_tenants_dataset_is_unknown(world: dict[str, Any]) -> None:
    client, auth = world["client"], world["auth"]
    body = _body(world["ids"], training_dataset=world["other_ds"])
    problem = assert_problem(client.post("/v1/jobs", json=body, headers=auth), 422)
    assert problem["errors"][0]["field"] == "training_dataset"
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


def test_malformed_json_body(world: dict[str, Any]) -> None:
    client, auth = world["client"], world["auth"]
    headers = {**auth, "content-type": "application/json"}
    assert_problem(client.post("/v1/jobs", content=b'{"model": ', headers=headers), 422)
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


@pytest.mark.parametrize(
    ("path", "status", "slug"),
    [
        ("/v1/jobs?after=not-a-cursor", 400, "invalid-cursor"),
        ("/v1/jobs?after=ds_000000000000000000000000", 400, "invalid-cursor"),
        ("/v1/jobs?status=sleeping", 422, "validation-error"),
        ("/v1/jobs?limit=0", 422, "validation-error"),
        ("/v1/jobs/job_000000000000000000000000", 404, "not-found"),
    ],
)
def test_bad_queries(world: dict[str, Any], path: str, status: int, slug: str) -> None:
    assert_problem(world["client"].get(path, headers=world["auth"]), status, slug)


@pytest.mark.parametrize(
    "suffix",
    [
        "",
        "/events",
        "/events/stream",
        "/metrics",
        "/artifacts",
        "/artifacts/report.json",
        "/report",
        "/checkpoints",
    ],
)
def test_another_tenants_job_is_not_found(world: dict[str, Any], suffix: str) -> None:
    client, auth = world["client"], world["auth"]
    assert_problem(client.get(f"/v1/jobs/{world['other_job']}{suffix}", headers=auth), 404)


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_another_tenants_job_cannot_be_changed(world: dict[str, Any], action: str) -> None:
    client, auth = world["client"], world["auth"]
    job_id = world["other_job"]
    assert_problem(client.post(f"/v1/jobs/{job_id}/{action}", headers=auth), 404)
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "..%2Freport.json",
        "%2e%2e/%2e%2e/grait.db",
        "/etc/passwd",
        ".stages.tmp",
        "stages.json",
        "a" * 300,
    ],
)
def test_hostile_artifact_names(world: dict[str, Any], tmp_path: Path, name: str) -> None:
    """Names are looked up among the listed files; anything else is a 404 problem."""
    client, auth, app = world["client"], world["auth"], world["app"]
    job_id = client.post("/v1/jobs", json=job_body(world["ids"]), headers=auth).json()["id"]
    folder = app.state.store.root / "jobs" / job_id
    folder.mkdir(parents=True)
    (folder / "report.json").write_text("{}")
    (folder / "stages.json").write_text("{}")
    (app.state.store.root / "secret.txt").write_text("no")
    response = client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=auth)
    assert response.status_code == 404, (name, response.status_code)
    listed = client.get(f"/v1/jobs/{job_id}/artifacts", headers=auth).json()["data"]
    assert [a["name"] for a in listed] == ["report.json"]


def test_job_state_conflicts(world: dict[str, Any]) -> None:
    """A queued job has no report (409) and cannot be retried (409)."""
    client, auth = world["client"], world["auth"]
    job_id = client.post("/v1/jobs", json=job_body(world["ids"]), headers=auth).json()["id"]
    assert_problem(client.get(f"/v1/jobs/{job_id}/report", headers=auth), 409, "conflict")
    assert_problem(client.post(f"/v1/jobs/{job_id}/retry", headers=auth), 409, "conflict")
    assert len(client.get("/v1/jobs", headers=auth).json()["data"]) == 1


def test_bad_event_cursors(world: dict[str, Any]) -> None:
    client, auth = world["client"], world["auth"]
    job_id = client.post("/v1/jobs", json=job_body(world["ids"]), headers=auth).json()["id"]
    assert_problem(client.get(f"/v1/jobs/{job_id}/events?after=-1", headers=auth), 422)
    headers = {**auth, "Last-Event-ID": "abc"}
    assert_problem(client.get(f"/v1/jobs/{job_id}/events/stream", headers=headers), 400)


def test_idempotency_key_too_long(world: dict[str, Any]) -> None:
    client, auth = world["client"], world["auth"]
    headers = {**auth, "Idempotency-Key": "k" * 256}
    assert_problem(client.post("/v1/jobs", json=job_body(world["ids"]), headers=headers), 422)
    assert client.get("/v1/jobs", headers=auth).json()["data"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer grait_xxxxxxxx_yyyyyyyyyyyyyyyyyyyyyyyy"},
    ],
)
def test_missing_or_wrong_key(world: dict[str, Any], headers: dict[str, str]) -> None:
    client = world["client"]
    assert_problem(client.post("/v1/jobs", json=job_body(world["ids"]), headers=headers), 401)
    assert_problem(client.get(f"/v1/jobs/{world['other_job']}", headers=headers), 401)
    assert client.get("/v1/jobs", headers=world["auth"]).json()["data"] == []
