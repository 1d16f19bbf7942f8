"""Real processes on loopback for the worker tests: Redis, Celery workers, the API.

- ``redis_server``: a private ``redis-server`` on a free port (no persistence), so the
  machine's Redis is never touched and a test may kill and restart it.
- ``Worker``: ``python -m grait_cli.main worker ...`` in its own session, output in a log.
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
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

# The session's databases (in-process tests run on both, as the app tests do).
from tests.app.conftest import database_url, postgresql_url, sqlite_url  # noqa: F401
from tests.app.helpers import NDJSON, new_key
from tests.app.job_helpers import retire_leftover_jobs

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "cancelled")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned); fail after
    ``timeout`` seconds with ``what`` in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    """A private, non-persistent Redis on ``port``; ``kill``/``start`` to simulate an outage."""

    port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(lambda: _pings(client), 10, f"redis on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


class Worker:
    """A ``grait worker`` process (own session, so a group kill reaches embedded beat)."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env, self.log, self.args = env, log, args
        self.process: subprocess.Popen | None = None

    def start(self, **env: str) -> Worker:
        """Start it (extra ``GRAIT_*`` variables in ``env``); returns once it consumes."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        command = [sys.executable, "-m", "grait_cli.main", "worker", *self.args]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command, env={**self.env, **env}, cwd=ROOT, stdout=output,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: b" ready." in self.log.read_bytes()[offset:], 60, f"{self.args} ready")
        return self

    def kill(self) -> None:
        """SIGKILL the main process only (its job child must die by PDEATHSIG)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole group after 20 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


def job_children(job_id: str | None = None) -> list[int]:
    """Pids of running ``python -m worker.child`` processes (of ``job_id`` if given)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"worker.child" in argv and state != "Z":
            if job_id is None or job_id.encode() in argv:
                found.append(int(entry.name))
    return found


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
        "GRAIT_DATA_DIR": str(data), "GRAIT_DATABASE_URL": postgresql_url,
        "GRAIT_BROKER_URL": redis_server.url, "GRAIT_QUEUE": "celery",
        "GRAIT_TOYWORLD_DIR": str(toyworld_root), "GRAIT_DEVICE": "cpu",
        "GRAIT_LEASE_SECONDS": "3", "GRAIT_CANCEL_GRACE_SECONDS": "8", "GRAIT_MAX_ATTEMPTS": "3",
        "GRAIT_REAP_INTERVAL_SECONDS": "1", "GRAIT_RESEND_QUEUED_AFTER_SECONDS": "4",
        "GRAIT_TORCH_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
    }  # fmt: skip
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
            "model": "toyworld/tiny", "task": "choice", "training_dataset": self.datasets["train"],
            "eval_datasets": {"id": self.datasets["test_id"], "ood": self.datasets["test_ood"]},
            "method": {"type": "cor_rait", "n_ik": 16, "n_idk": 16},
            "probe": {"choice_shots": 1},
            "hyperparameters": {"lora_r": 4, "epochs": 1, "batch_size": 8},
        } | overrides  # fmt: skip
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
            timeout, f"job {job_id} to end", every=0.5,
        )  # fmt: skip


@pytest.fixture(scope="session")
def service(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, toyworld_root: Path
) -> Iterator[Service]:
    from grait_engine.toyworld import build_toyworld, preset

    settings = Settings(
        data_dir=Path(worker_env["GRAIT_DATA_DIR"]), database_url=worker_env["GRAIT_DATABASE_URL"],
        queue="celery", broker_url=worker_env["GRAIT_BROKER_URL"], local_runner=False,
        toyworld_dir=toyworld_root, max_attempts=3,
    )  # fmt: skip
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
