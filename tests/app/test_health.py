"""/healthz, /readyz (and its 503s), /metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.app.helpers import assert_problem, open_lines, upload_raw


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "storage": "ok"}


def test_readyz_503_when_storage_is_not_writable(client: TestClient, app: FastAPI) -> None:
    # A file where the store's tmp/ directory should be: nothing can be written there.
    tmp_dir = app.state.store.tmp_dir
    shutil.rmtree(tmp_dir)
    tmp_dir.write_text("")
    body = assert_problem(client.get("/readyz"), 503, "not-ready")
    assert body["checks"]["storage"].startswith("not writable")
    assert body["checks"]["database"] == "ok"


def test_readyz_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"
    )
    with TestClient(create_app(settings)) as client:
        body = assert_problem(client.get("/readyz"), 503, "not-ready")
        assert body["checks"]["database"].startswith("unreachable")
        assert "127.0.0.1" not in body["detail"]  # no URLs (they may hold passwords)
        assert client.get("/healthz").status_code == 200


def test_readyz_503_until_migrated_when_not_embedded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auto_migrate=False)
    with TestClient(create_app(settings)) as client:
        body = assert_problem(client.get("/readyz"), 503, "not-ready")
        assert body["checks"]["migrations"] == "not at head"


def test_metrics_count_requests_by_route_and_status(client: TestClient, auth: dict) -> None:
    upload_raw(client, auth, open_lines(1))
    client.get("/v1/datasets/ds_missing", headers=auth)
    text = client.get("/metrics").text
    assert "# TYPE grait_http_requests_total counter" in text
    assert 'grait_http_requests_total{method="POST",route="/v1/datasets",status="201"} 1' in text
    assert 'route="/v1/datasets/{dataset_id}",status="404"} 1' in text
    assert "grait_http_request_duration_seconds_bucket{" in text
    assert 'le="+Inf"' in text
