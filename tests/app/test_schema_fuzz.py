"""Schemathesis over the OpenAPI schema: generated requests never get a 5xx, and no ``/v1``
operation answers anything but 401 without a key (no auth bypass).

The service runs on SQLite without a job runner (created jobs stay queued) or webhook
dispatcher; the tenant owns a choice dataset, a job and a webhook, so generated ids
sometimes hit real rows. Examples per
operation are bounded (``MAX_EXAMPLES``) to keep the suite fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from tests.app.helpers import choice_lines, new_key, upload_raw
from tests.app.job_helpers import job_body, job_settings

MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{root / 'grait.db'}"
    settings = job_settings(
        root / "data", url, root / "tw", local_runner=False, webhook_dispatcher=False
    )
    app = create_app(settings)
    with TestClient(app) as client:  # runs the lifespan: migrations, store
        key, _ = new_key(app)
        auth = {"Authorization": f"Bearer {key}"}
        dataset = upload_raw(client, auth, choice_lines(4), "choice").json()["id"]
        ids = {"train": dataset, "test_id": dataset, "test_ood": dataset}
        job = client.post("/v1/jobs", json=job_body(ids), headers=auth).json()["id"]
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]}
        webhook = client.post("/v1/webhooks", json=hook, headers=auth).json()["id"]
        yield {"app": app, "auth": auth, "dataset": dataset, "job": job, "webhook": webhook}
    app.state.engine.dispose()


def test_no_server_errors(fuzz_app: dict[str, Any]) -> None:
    """Any request the schema allows, for every operation, gets a non-5xx answer."""
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app["app"])
    real = {
        "dataset_id": fuzz_app["dataset"],
        "job_id": fuzz_app["job"],
        "webhook_id": fuzz_app["webhook"],
    }
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy(), use_real_ids=st.booleans())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any, use_real_ids: bool) -> None:
            if use_real_ids and case.path_parameters:
                # Half of the cases address the tenant's real rows, not only 404s.
                for name, value in real.items():
                    if name in case.path_parameters:
                        case.path_parameters[name] = value
            response = case.call(headers=fuzz_app["auth"])
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert "POST /v1/jobs" in labels and len(labels) >= 15


def _v1_operations(app: FastAPI) -> list[tuple[str, str]]:
    operations = []
    for path, methods in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            operations += [(method.upper(), path) for method in methods]
    return operations


def test_every_v1_operation_needs_a_key(fuzz_app: dict[str, Any]) -> None:
    """Each ``/v1`` operation, with real ids of the tenant, answers 401 without a key and
    with a wrong key; the same request with the key is not a 401 (the check can fail)."""
    app = fuzz_app["app"]
    operations = _v1_operations(app)
    assert len(operations) >= 15
    real = {
        "dataset_id": fuzz_app["dataset"],
        "job_id": fuzz_app["job"],
        "name": "report.json",
        "webhook_id": fuzz_app["webhook"],
    }
    with TestClient(app) as client:
        for method, path in operations:
            url = re.sub(r"\{(\w+)(:path)?\}", lambda m: real[m.group(1)], path)
            for headers in ({}, {"Authorization": "Bearer grait_wrong_key"}):
                response = client.request(method, url, headers=headers)
                assert response.status_code == 401, (method, url, response.status_code)
            authed = client.request(method, url, headers=fuzz_app["auth"])
            assert authed.status_code != 401 and authed.status_code < 500, (method, url)


def test_fixture_paths_exist(tmp_path: Path) -> None:
    """The fuzz fixture's schema is the service's: it lists the job and dataset resources."""
    app = create_app(job_settings(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", tmp_path))
    paths = app.openapi()["paths"]
    expected = {
        "/v1/jobs",
        "/v1/jobs/{job_id}/events/stream",
        "/v1/datasets",
        "/v1/webhooks",
        "/v1/evaluations",
        "/v1/jobs/{job_id}/evaluations",
        "/v1/jobs/{job_id}/generations",
        "/v1/jobs/{job_id}/exports",
        "/v1/webhooks/{webhook_id}/deliveries",
    }
    assert expected <= set(paths)
    app.state.engine.dispose()
