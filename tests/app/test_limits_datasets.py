"""Datasets in use: deleting one that a queued (or running) job uses is a 409; retrying a
job resolves its request again, so a retry whose dataset is gone is a 422 naming it.
API only: no job runs here (a running job is made by claiming its lease)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.execution import lease
from app.main import create_app
from tests.app.helpers import assert_problem, choice_lines, new_key, open_lines, upload_raw
from tests.app.job_helpers import job_body, job_settings, upload_small_sets


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    settings = job_settings(tmp_path / "data", database_url, tmp_path / "tw", local_runner=False)
    app = create_app(settings)
    with TestClient(app) as client:
        key, _ = new_key(app)
        auth = {"Authorization": f"Bearer {key}"}
        ids = upload_small_sets(client, auth)
        yield {"app": app, "client": client, "auth": auth, "ids": ids}
    app.state.engine.dispose()


def _job(world: dict[str, Any]) -> str:
    response = world["client"].post("/v1/jobs", json=job_body(world["ids"]), headers=world["auth"])
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("dataset", ["train", "test_ood"])
def test_deleting_a_dataset_of_a_queued_job_is_409(world: dict[str, Any], dataset: str) -> None:
    client, auth = world["client"], world["auth"]
    job_id = _job(world)
    dataset_id = world["ids"][dataset]
    problem = assert_problem(client.delete(f"/v1/datasets/{dataset_id}", headers=auth), 409)
    assert job_id in problem["detail"] and problem["jobs"] == [job_id]
    assert client.get(f"/v1/datasets/{dataset_id}", headers=auth).status_code == 200
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert client.delete(f"/v1/datasets/{dataset_id}", headers=auth).status_code == 204


def test_deleting_a_dataset_of_a_running_job_is_409(world: dict[str, Any]) -> None:
    client, auth, app = world["client"], world["auth"], world["app"]
    job_id = _job(world)
    assert lease.claim(app.state.session_factory, job_id, "runner-1", 600) is not None
    response = client.delete(f"/v1/datasets/{world['ids']['train']}", headers=auth)
    assert assert_problem(response, 409)["jobs"] == [job_id]
    # A dataset no active job uses is deleted as before.
    spare = upload_raw(client, auth, choice_lines(2), "choice").json()["id"]
    assert client.delete(f"/v1/datasets/{spare}", headers=auth).status_code == 204


def test_retry_of_a_job_whose_dataset_is_gone_is_refused(world: dict[str, Any]) -> None:
    """It used to be accepted, then failed again in the runner."""
    client, auth = world["client"], world["auth"]
    job_id = _job(world)
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    assert client.delete(f"/v1/datasets/{world['ids']['test_id']}", headers=auth).status_code == 204
    problem = assert_problem(client.post(f"/v1/jobs/{job_id}/retry", headers=auth), 422)
    assert [error["field"] for error in problem["errors"]] == ["eval_datasets.id"]
    jobs = client.get("/v1/jobs", headers=auth).json()["data"]
    assert [job["id"] for job in jobs] == [job_id]  # no retry job was stored


def test_retry_resolves_the_same_config_again(world: dict[str, Any]) -> None:
    client, auth = world["client"], world["auth"]
    job_id = _job(world)
    first = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth).json()
    retry = client.post(f"/v1/jobs/{job_id}/retry", headers=auth)
    assert retry.status_code == 201, retry.text
    assert retry.json()["config"] == first["config"]
    assert retry.json()["parent_job_id"] == job_id


def test_a_shots_dataset_is_checked_echoed_and_kept_while_in_use(world: dict[str, Any]) -> None:
    client, auth = world["client"], world["auth"]
    shots = upload_raw(client, auth, choice_lines(2), "choice").json()["id"]
    body = {**job_body(world["ids"]), "shots_dataset": shots}
    created = client.post("/v1/jobs", json=body, headers=auth)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert created.json()["config"]["shots_dataset"] == shots
    # In use by a queued job: 409, like its training and evaluation sets.
    assert assert_problem(client.delete(f"/v1/datasets/{shots}", headers=auth), 409)["jobs"] == [
        job_id
    ]
    # A shots dataset of the other task type, or one that is not there, is a 422 naming it.
    wrong = upload_raw(client, auth, open_lines(2), "open").json()["id"]
    for ref in (wrong, "ds_missing"):
        response = client.post("/v1/jobs", json={**body, "shots_dataset": ref}, headers=auth)
        problem = assert_problem(response, 422)
        assert [error["field"] for error in problem["errors"]] == ["shots_dataset"]
    # Without one the job probes 0-shot and echoes null.
    plain = client.post("/v1/jobs", json=job_body(world["ids"]), headers=auth).json()
    assert plain["config"]["shots_dataset"] is None
