"""Running real jobs through the API on the tiny toy world (model ``toyworld/tiny``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.settings import Settings
from tests.app.helpers import choice_lines, upload_raw

TERMINAL = ("succeeded", "failed", "cancelled")
NDJSON = {"content-type": "application/x-ndjson"}


def job_settings(data_dir: Path, database_url: str, toyworld_dir: Path, **extra: Any) -> Settings:
    """Settings for job tests: short leases, the session's tiny world, 10 MB uploads, and
    job children with one torch thread (the test machine is shared: a child with every
    core beside other torch processes slows them all down)."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "toyworld_dir": toyworld_dir,
        "lease_seconds": 3.0,
        "cancel_grace_seconds": 10.0,
        "max_upload_bytes": 10 << 20,
        "torch_threads": 1,
    }
    return Settings(**(values | extra))


def upload_world(client: TestClient, auth: dict[str, str], toyworld_dir: Path) -> dict[str, str]:
    """Upload the tiny world's choice datasets; ``{train, test_id, test_ood}`` -> id."""
    ids = {}
    for split in ("train", "test_id", "test_ood"):
        body = (toyworld_dir / "tiny-seed0" / "data" / "choice" / f"{split}.jsonl").read_bytes()
        response = client.post("/v1/datasets?task=choice", content=body, headers={**auth, **NDJSON})
        assert response.status_code == 201, response.text
        ids[split] = response.json()["id"]
    return ids


def upload_small_sets(client: TestClient, auth: dict[str, str]) -> dict[str, str]:
    """Three choice datasets of 3 items for tests whose jobs never run; ``{train, test_id,
    test_ood}`` -> id."""
    return {
        name: upload_raw(client, auth, choice_lines(3), "choice").json()["id"]
        for name in ("train", "test_id", "test_ood")
    }


def job_body(ids: dict[str, str], method: str = "grait", epochs: int = 1, **extra: Any) -> dict:
    """A small job on the tiny world (about 6 s with one epoch)."""
    body: dict[str, Any] = {
        "model": "toyworld/tiny",
        "task": "choice",
        "training_dataset": ids["train"],
        "eval_datasets": {"id": ids["test_id"], "ood": ids["test_ood"]},
        "method": {"type": method, "n_ik": 16, "n_idk": 16},
        "probe": {"choice_shots": 1},
        "hyperparameters": {"lora_r": 4, "epochs": epochs, "batch_size": 8},
        "seed": 0,
    }
    if method == "grait":
        body["features"] = {"dim": 256, "lora_r": 4, "warmup_max_items": 32}
    return body | extra


def wait_for(
    client: TestClient, auth: dict[str, str], job_id: str, done: Any, timeout: float = 240.0
) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{id}`` until ``done(job)``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job['status']} {job['progress']}"
        time.sleep(0.3)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in TERMINAL


def events(client: TestClient, auth: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/events?limit=1000", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def retire_leftover_jobs(database_url: str) -> None:
    """Cancel every queued job in the session's shared database.

    API-only tests leave queued jobs behind (nothing runs them); a test that starts a
    runner would otherwise run them first (oldest first) and wait behind them.
    """
    from sqlalchemy import update

    from app.db.models import Job
    from app.db.session import make_engine, make_session_factory, unit_of_work
    from app.db.types import utcnow

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            session.execute(
                update(Job)
                .where(Job.status == "queued")
                .values(status="cancelled", finished_at=utcnow(), updated_at=utcnow())
            )
    finally:
        engine.dispose()
