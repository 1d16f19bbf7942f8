"""Job limits at the API: caps on count-like settings (422 naming the field and the
setting), no NaN or Infinity anywhere in a job (422 naming the field), and a per-tenant
limit on queued plus running jobs (429). API only: no job runs here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.jobs.limits import CAPS
from app.jobs.vocabulary import public_config
from app.main import create_app
from app.settings import Settings
from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.pipeline.knobs import JobKnobs
from tests.app.helpers import assert_problem, new_key
from tests.app.job_helpers import job_body, job_settings, upload_small_sets

# Lower than the defaults for two settings, to show the operator's values are used.
EPOCHS_CAP, ACTIVE_CAP = 5, 3


@dataclass
class Service:
    client: TestClient
    settings: Settings
    auth: dict[str, str]
    ids: dict[str, str]

    def tenant(self) -> tuple[dict[str, str], dict[str, str]]:
        """(auth headers, dataset ids) of a fresh tenant with three choice datasets."""
        key, _ = new_key(self.client.app)  # type: ignore[arg-type]
        auth = {"Authorization": f"Bearer {key}"}
        return auth, upload_small_sets(self.client, auth)

    def create(self, body: dict[str, Any], auth: dict[str, str] | None = None, **headers: str):
        return self.client.post("/v1/jobs", json=body, headers={**(auth or self.auth), **headers})

    def create_raw(self, text: str):
        """POST a job body as raw JSON text (``NaN`` / ``Infinity`` literals included)."""
        headers = {**self.auth, "content-type": "application/json"}
        return self.client.post("/v1/jobs", content=text.encode(), headers=headers)


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[Service]:
    settings = job_settings(
        tmp_path / "data",
        database_url,
        tmp_path / "tw",
        local_runner=False,
        max_epochs=EPOCHS_CAP,
        max_active_jobs_per_tenant=ACTIVE_CAP,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        placeholder = Service(client, settings, {}, {})
        auth, ids = placeholder.tenant()
        yield Service(client, settings, auth, ids)
    app.state.engine.dispose()


def _with(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    section, _, knob = field.partition(".")
    body = json.loads(json.dumps(body))
    body.setdefault(section, {})[knob] = value
    return body


# The values the hostile tester sent (issue 16), and one more per capped knob.
ABSURD = [
    ("hyperparameters.epochs", 10**9),
    ("hyperparameters.lora_r", 10**6),
    ("probe.n_samples", 10**9),
    ("probe.max_new_tokens", 10**9),
    ("hyperparameters.batch_size", 10**9),
    ("hyperparameters.max_steps", 10**12),
    ("hyperparameters.grad_accum", 10**9),
    ("hyperparameters.keep_checkpoints", 10**6),
    ("hyperparameters.checkpoint_every", 10**12),
    ("probe.choice_shots", 10**6),
    ("method.n_ik", 10**12),
    ("features.dim", 10**9),
    ("features.warmup_epochs", 10**9),
    ("features.warmup_max_items", 10**12),
]


@pytest.mark.parametrize(("field", "value"), ABSURD)
def test_absurd_counts_get_422_naming_field_and_setting(
    service: Service, field: str, value: int
) -> None:
    response = service.create(_with(job_body(service.ids), field, value))
    body = assert_problem(response, 422, "validation-error")
    setting = f"GRAIT_{CAPS[field].upper()}"
    assert body["errors"][0]["field"] == field, body
    assert setting in body["errors"][0]["message"], body
    assert service.client.get("/v1/jobs", headers=service.auth).json()["data"] == []


def test_every_count_like_knob_has_a_cap() -> None:
    """Each integer knob of the resolved config (but the seed) is in ``CAPS``: a knob added
    to the engine later must get a cap too."""
    knobs = public_config(JobKnobs.from_dict({"method": {"type": "grait"}}).to_dict())
    counts = {
        f"{section}.{name}"
        for section, values in knobs.items()
        if isinstance(values, dict)
        for name, value in values.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }
    # Default null.
    counts |= {"hyperparameters.max_steps", "runtime.batch_size", "method.reweight_every"}
    counts -= {"method.sign", "runtime.memory_budget_mb"}  # not counts; capped by the engine
    assert counts <= set(CAPS), sorted(counts - set(CAPS))


def test_caps_are_the_operators(service: Service) -> None:
    """GRAIT_MAX_EPOCHS (here 5): 5 is accepted, 6 is not."""
    at_cap = service.create(_with(job_body(service.ids), "hyperparameters.epochs", EPOCHS_CAP))
    assert at_cap.status_code == 201, at_cap.text
    over = service.create(_with(job_body(service.ids), "hyperparameters.epochs", EPOCHS_CAP + 1))
    body = assert_problem(over, 422, "validation-error")
    assert body["errors"][0]["message"] == f"must be at most {EPOCHS_CAP} on this server " + (
        "(GRAIT_MAX_EPOCHS)"
    )


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("hyperparameters.lr", "Infinity"),
        ("hyperparameters.grad_clip", "NaN"),
        ("hyperparameters.weight_decay", "-Infinity"),
        ("probe.temperature", "NaN"),
        ("features.lr", "Infinity"),
        ("method.temperature", "Infinity"),
        ("hyperparameters.adam_betas", "[0.9, NaN]"),
        ("tau", "NaN"),
        ("runtime.memory_budget_mb", "Infinity"),
    ],
)
def test_non_finite_numbers_get_422_naming_the_field(
    service: Service, field: str, literal: str
) -> None:
    """JSON parsers accept the NaN and Infinity literals; the service does not (it used to
    answer 201 and fail the job with an SQL error, or 500 on PostgreSQL)."""
    body = job_body(service.ids)
    marker = "__NON_FINITE__"
    if field == "tau":
        body["tau"] = marker
    else:
        body = _with(body, field, marker)
    response = service.create_raw(json.dumps(body).replace(f'"{marker}"', literal))
    problem = assert_problem(response, 422, "validation-error")
    named = [error["field"] for error in problem["errors"]]
    assert any(name == field or name.startswith(f"{field}.") for name in named), problem
    assert service.client.get("/v1/jobs", headers=service.auth).json()["data"] == []


@pytest.mark.parametrize("name", ["lr", "lora_alpha", "adam_eps", "precondition_eps"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_features_config_rejects_non_finite(name: str, value: float) -> None:
    with pytest.raises(FeaturesConfigError) as error:
        FeaturesConfig(**{name: value})
    assert error.value.field == name


def test_active_jobs_per_tenant_limit(service: Service) -> None:
    """GRAIT_MAX_ACTIVE_JOBS_PER_TENANT (here 3): the fourth queued job is a 429; another
    tenant is not affected; an idempotent replay is still answered; a cancel frees a place."""
    jobs = [
        service.create(job_body(service.ids), **{"Idempotency-Key": f"k{i}"})
        for i in range(ACTIVE_CAP)
    ]
    assert [r.status_code for r in jobs] == [201] * ACTIVE_CAP
    refused = assert_problem(service.create(job_body(service.ids)), 429, "too-many-jobs")
    assert f"GRAIT_MAX_ACTIVE_JOBS_PER_TENANT={ACTIVE_CAP}" in refused["detail"]
    replay = service.create(job_body(service.ids), **{"Idempotency-Key": "k0"})
    assert replay.status_code == 200 and replay.json()["id"] == jobs[0].json()["id"]
    other_auth, other_ids = service.tenant()
    assert service.create(job_body(other_ids), other_auth).status_code == 201
    cancelled = service.client.post(f"/v1/jobs/{jobs[0].json()['id']}/cancel", headers=service.auth)
    assert cancelled.json()["status"] == "cancelled"
    assert service.create(job_body(service.ids)).status_code == 201
    # A retry is a new job: it counts too.
    retry = service.client.post(f"/v1/jobs/{jobs[0].json()['id']}/retry", headers=service.auth)
    assert_problem(retry, 429, "too-many-jobs")
