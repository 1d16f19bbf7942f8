"""One job-config vocabulary: the stored config is the engine's (``training``), the API's
is the request's (``hyperparameters``), renamed only at the HTTP edge. API only: no job runs
here; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db.models import Job
from app.main import create_app
from tests.app.helpers import assert_problem, new_key
from tests.app.job_helpers import job_body, job_settings, upload_small_sets

EPOCHS_CAP = 5


@dataclass
class Api:
    client: TestClient
    auth: dict[str, str]
    ids: dict[str, str]

    def create(self, body: dict[str, Any]) -> Any:
        return self.client.post("/v1/jobs", json=body, headers=self.auth)

    def stored_config(self, job_id: str) -> dict[str, Any]:
        factory = self.client.app.state.session_factory  # type: ignore[attr-defined]
        with factory() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return dict(job.config)


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    settings = job_settings(
        tmp_path / "data",
        database_url,
        tmp_path / "tw",
        local_runner=False,
        max_epochs=EPOCHS_CAP,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        key, _ = new_key(app)
        auth = {"Authorization": f"Bearer {key}"}
        ids = upload_small_sets(client, auth)
        yield Api(client, auth, ids)
    app.state.engine.dispose()


def test_stored_config_says_training_and_the_api_hyperparameters(api: Api) -> None:
    """Create and retry: the row holds the engine's ``training`` knobs, the echo the same
    values as ``hyperparameters``; a retry resolves the stored config back to a request."""
    body = job_body(api.ids, "cor_rait", hyperparameters={"lora_r": 4, "epochs": 2, "lr": 0.001})
    created = api.create(body)
    assert created.status_code == 201, created.text
    echoed = created.json()["config"]
    assert "training" not in echoed
    assert echoed["hyperparameters"]["epochs"] == 2 and echoed["hyperparameters"]["lr"] == 0.001
    stored = api.stored_config(created.json()["id"])
    assert "hyperparameters" not in stored
    assert stored["training"] == echoed["hyperparameters"]
    assert {k: v for k, v in stored.items() if k != "training"} == {
        k: v for k, v in echoed.items() if k != "hyperparameters"
    }
    job_id = created.json()["id"]
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.auth).json()["config"] == echoed

    cancel = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth)
    assert cancel.json()["status"] == "cancelled", cancel.text
    retry = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.auth)
    assert retry.status_code == 201, retry.text
    assert retry.json()["config"] == echoed
    assert api.stored_config(retry.json()["id"]) == stored


@pytest.mark.parametrize(
    ("knobs", "field", "message"),
    [
        ({"lr": -1}, "hyperparameters.lr", "must be a finite number > 0"),
        ({"lr": "fast"}, "hyperparameters.lr", "must be a finite number"),
        ({"epochs": EPOCHS_CAP + 1}, "hyperparameters.epochs", "(GRAIT_MAX_EPOCHS)"),
    ],
)
def test_a_bad_training_knob_is_named_as_the_request_names_it(
    api: Api, knobs: dict[str, Any], field: str, message: str
) -> None:
    response = api.create(job_body(api.ids, "cor_rait", hyperparameters=knobs))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == field, problem
    assert message in problem["errors"][0]["message"], problem
