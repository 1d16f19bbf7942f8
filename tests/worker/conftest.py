"""Real processes on loopback for the worker tests: Redis, Celery workers, the API.

- ``redis_server``: a private ``redis-server`` on a free port (no persistence), so the
  machine's Redis is never touched and a test may kill and restart it.
- ``Worker`` (tests/worker/processes.py): ``python -m grait_cli.main worker ...`` in its
  own session, output in a log.
- ``worker_env``: the ``GRAIT_*`` environment of the workers (PostgreSQL test database,
  short leases and reaper intervals, CPU, one torch thread per job child: the child
  shares the 2 cores with PostgreSQL, Redis, the workers and the test process).
- ``service``: the API in-process (``GRAIT_QUEUE=celery``) with a tenant and the tiny toy
  world's choice datasets uploaded.
``GRAIT_TEST_TOYWORLD_DIR`` (optional) names a folder whose ``tiny-seed0`` is reused
instead of building the toy world into the session's temp dir (about 25 s).
Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

# The session's databases (in-process tests run on both, as the app tests do).
from tests.app.conftest import database_url, postgresql_url, sqlite_url  # noqa: F401
from tests.app.helpers import NDJSON, new_key
from tests.app.job_helpers import retire_leftover_jobs
from tests.worker.processes import ROOT, RedisServer, Worker, free_port, wait_for

TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def toyworld_root(toyworld_dir: Path) -> Path:
    """A folder with ``tiny-seed0`` built (the session's, see tests/conftest.py)."""
    return toyworld_dir


@pytest.fixture(scope="session")
def worker_env(
    tmp_path_factory: pytest.TempPathFactory,
    postgresql_url: str,  # noqa: F811
    redis_server: RedisServer,
    toyworld_root: Path,
) -> dict[str, str]:
    """The workers' environment: test database, private Redis, short leases. Queued jobs
    left in the shared database by the API tests are cancelled first (nothing else would
    run them, and the reaper would hand them to these workers)."""
    retire_leftover_jobs(postgresql_url)
    data = tmp_path_factory.mktemp("worker-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAIT_")}
    env |= {
        "GRAIT_DATA_DIR": str(data),
        "GRAIT_DATABASE_URL": postgresql_url,
        "GRAIT_BROKER_URL": redis_server.url,
        "GRAIT_QUEUE": "celery",
        "GRAIT_TOYWORLD_DIR": str(toyworld_root),
        "GRAIT_DEVICE": "cpu",
        "GRAIT_LEASE_SECONDS": "3",
        "GRAIT_CANCEL_GRACE_SECONDS": "8",
        "GRAIT_MAX_ATTEMPTS": "3",
        "GRAIT_REAP_INTERVAL_SECONDS": "1",
        "GRAIT_RESEND_QUEUED_AFTER_SECONDS": "4",
        "GRAIT_TORCH_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
    }
    return env


@pytest.fixture(scope="session")
def reaper(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """A worker on the ``light`` queue with the embedded beat (the reaper), never killed."""
    log = tmp_path_factory.getbasetemp() / "reaper.log"
    worker = Worker(worker_env, log, "--queues", "light", "--beat", "--name", "reaper@%h")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def gpu_worker(
    worker_env: dict[str, str], reaper: Worker, tmp_path: Path, service: Service
) -> Iterator[Callable[..., Worker]]:
    """A factory starting ``gpu`` queue workers (a fresh stage cache per test unless
    ``GRAIT_STAGE_CACHE_DIR`` is passed); all are stopped at the end of the test."""
    started: list[Worker] = []
    cache = str(tmp_path / "cache")

    def start(**env: str) -> Worker:
        name = f"gpu-{uuid.uuid4().hex[:6]}@%h"
        worker = Worker(worker_env, tmp_path / "gpu.log", "--queues", "gpu", "--name", name)
        started.append(worker.start(**{"GRAIT_STAGE_CACHE_DIR": cache, **env}))
        return worker

    yield start
    service.cancel_unfinished()
    for worker in started:
        worker.stop()


@dataclass
class Service:
    """The API (TestClient) with a tenant's key and the toy world's datasets uploaded."""

    client: TestClient
    headers: dict[str, str]
    datasets: dict[str, str]

    def create(self, **overrides: Any) -> str:
        body = {
            "model": "toyworld/tiny",
            "task": "choice",
            "training_dataset": self.datasets["train"],
            "eval_datasets": {"id": self.datasets["test_id"], "ood": self.datasets["test_ood"]},
            "method": {"type": "cor_rait", "n_ik": 16, "n_idk": 16},
            "probe": {"choice_shots": 1},
            "hyperparameters": {"lora_r": 4, "epochs": 1, "batch_size": 8},
        } | overrides
        response = self.client.post("/v1/jobs", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def events(self, job_id: str) -> list[dict[str, Any]]:
        url = f"/v1/jobs/{job_id}/events?limit=1000"
        return list(self.client.get(url, headers=self.headers).json()["data"])

    def cancel_unfinished(self) -> None:
        """Cancel every job of this tenant not yet ended (a failed test leaves no work)."""
        for status in ("queued", "running"):
            url = f"/v1/jobs?status={status}&limit=100"
            for job in self.client.get(url, headers=self.headers).json()["data"]:
                self.client.post(f"/v1/jobs/{job['id']}/cancel", headers=self.headers)

    def wait_terminal(self, job_id: str, timeout: float) -> dict[str, Any]:
        return wait_for(
            lambda: (job := self.job(job_id))["status"] in TERMINAL and job,
            timeout,
            f"job {job_id} to end",
            every=0.5,
        )


@pytest.fixture(scope="session")
def service(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, toyworld_root: Path
) -> Iterator[Service]:
    from grait_engine.toyworld import build_toyworld, preset

    settings = Settings(
        data_dir=Path(worker_env["GRAIT_DATA_DIR"]),
        database_url=worker_env["GRAIT_DATABASE_URL"],
        queue="celery",
        broker_url=worker_env["GRAIT_BROKER_URL"],
        local_runner=False,
        toyworld_dir=toyworld_root,
        max_attempts=3,
    )
    world = build_toyworld(preset("tiny", 0), toyworld_root / "tiny-seed0")
    app = create_app(settings)
    with TestClient(app) as client:
        key, _ = new_key(app)
        headers = {"Authorization": f"Bearer {key}"}
        datasets = {}
        for split in ("train", "test_id", "test_ood"):
            body = world.data_path("choice", split).read_bytes()
            url = "/v1/datasets?task=choice"
            response = client.post(url, content=body, headers={**headers, **NDJSON})
            assert response.status_code == 201, response.text
            datasets[split] = response.json()["id"]
        yield Service(client, headers, datasets)
    app.state.engine.dispose()
