"""Dataset lines and checks shared by the service tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from app.auth import create_api_key
from app.db.models import Job
from app.db.session import unit_of_work
from app.db.types import new_id
from app.errors import PROBLEM_BASE

NDJSON = {"content-type": "application/x-ndjson"}
MAX_UPLOAD = 64 * 1024  # the upload cap of the test settings


def new_key(app: FastAPI, tenant: str | None = None) -> tuple[str, str]:
    """(API key string, tenant id) for a new key of ``tenant`` (default: a fresh tenant)."""
    with unit_of_work(app.state.session_factory) as session:
        key, record = create_api_key(session, tenant or f"t-{uuid.uuid4().hex[:10]}")
        return key, record.tenant_id


def insert_job(factory: sessionmaker[Session], tenant_id: str, **fields: Any) -> str:
    """A job row written straight to the database (no API, no queue): a ``cor_rait`` choice
    job on ``toyworld/tiny`` of ``tenant_id``, with ``fields`` (status, attempt, lease...)
    set over those defaults. Returns its id."""
    job_id = new_id("job")
    values: dict[str, Any] = {
        "model": "toyworld/tiny",
        "method": "cor_rait",
        "task": "choice",
        "config": {},
    }
    with unit_of_work(factory) as session:
        session.add(Job(id=job_id, tenant_id=tenant_id, **(values | fields)))
    return job_id


def open_lines(n: int = 3, start: int = 0) -> bytes:
    rows = [
        {"id": f"q{i}", "question": f"Where was person {i} born?", "answers": [f"City {i}"]}
        for i in range(start, start + n)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def choice_lines(n: int = 2) -> bytes:
    rows = [
        {"id": f"c{i}", "question": f"Pick {i}", "choices": {"A": "x", "B": "y"}, "answer": "B"}
        for i in range(n)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def upload_raw(
    client: TestClient, auth: dict[str, str], body: bytes, task: str = "open"
) -> Response:
    return client.post(f"/v1/datasets?task={task}", content=body, headers={**auth, **NDJSON})


def assert_problem(response: Response, status: int, slug: str | None = None) -> dict:
    """The response is an RFC 9457 problem with ``status`` (and problem type ``slug``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug
    return body


def stored_files(app: FastAPI) -> list[Path]:
    """Every file under the artifact directory (datasets and leftover temp files)."""
    root = app.state.store.root
    return sorted(path for path in root.rglob("*") if path.is_file())


def assert_nothing_stored(client: TestClient, app: FastAPI, auth: dict[str, str]) -> None:
    """No dataset row for the tenant and no file (not even a temp file) in the store."""
    listing = client.get("/v1/datasets", headers=auth)
    assert listing.status_code == 200
    assert listing.json()["data"] == []
    assert stored_files(app) == []
