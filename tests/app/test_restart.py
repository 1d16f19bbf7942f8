"""The service process is SIGKILLed while one job runs and another is queued; a new service
process on the same database and data folder finishes both (nothing acknowledged is lost).

The killed service's job child dies with it (``PR_SET_PDEATHSIG``); the job's lease then
expires, the new service's runner puts it back in the queue and re-runs it, resuming from
the finished stages (probe and split are reused from the stage cache).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth import create_api_key
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.settings import Settings
from tests.app.job_helpers import NDJSON, TERMINAL, job_body, job_settings, retire_leftover_jobs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_service(settings: Settings, port: int) -> subprocess.Popen:
    env = {**os.environ, **settings.child_env(), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "grait_cli.main", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the service did not start within 60 s")


def _job_children(job_id: str) -> list[int]:
    """Pids of ``worker.child`` processes running ``job_id`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"worker.child" in command and job_id.encode() in command:
            found.append(int(entry.name))
    return found


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def services() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _upload(client: httpx.Client, toyworld_dir: Path) -> dict[str, str]:
    ids = {}
    for split in ("train", "test_id", "test_ood"):
        body = (toyworld_dir / "tiny-seed0" / "data" / "choice" / f"{split}.jsonl").read_bytes()
        response = client.post("/v1/datasets?task=choice", content=body, headers=NDJSON)
        assert response.status_code == 201, response.text
        ids[split] = response.json()["id"]
    return ids


def test_service_killed_mid_job_loses_nothing(
    tmp_path: Path, database_url: str, toyworld_dir: Path, services: list[subprocess.Popen]
) -> None:
    settings = job_settings(tmp_path / "data", database_url, toyworld_dir)
    retire_leftover_jobs(database_url)
    engine = make_engine(settings.database_url)
    with unit_of_work(make_session_factory(engine)) as session:
        key, _ = create_api_key(session, "restart-tenant")
    engine.dispose()
    port = _free_port()
    services.append(_start_service(settings, port))
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30) as client:
        ids = _upload(client, toyworld_dir)
        running = client.post("/v1/jobs", json=job_body(ids, "cor_rait", epochs=100)).json()["id"]
        queued = client.post("/v1/jobs", json=job_body(ids, "van", seed=1)).json()["id"]

        def in_training() -> bool:
            job = client.get(f"/v1/jobs/{running}").json()
            return job["stage"] == "train" and job["progress"]["done"] >= 60

        _wait(in_training, 240, "the first job's training to pass step 60")
        assert client.get(f"/v1/jobs/{queued}").json()["status"] == "queued"

    services[0].send_signal(signal.SIGKILL)
    services[0].wait(10)
    _wait(lambda: not _job_children(running), 15, "the job's child to die with the service")

    port = _free_port()
    services.append(_start_service(settings, port))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30) as client:

        def all_finished() -> list[dict[str, Any]] | None:
            jobs = [client.get(f"/v1/jobs/{job_id}").json() for job_id in (running, queued)]
            return jobs if all(job["status"] in TERMINAL for job in jobs) else None

        first, second = _wait(all_finished, 300, "both jobs to finish after the restart")
        assert first["status"] == "succeeded" and first["attempt"] == 2, first
        assert second["status"] == "succeeded" and second["attempt"] == 1, second
        stages = client.get(f"/v1/jobs/{running}/report").json()["stages"]
        assert stages["probe"]["cached"] and stages["split"]["cached"]
        events = client.get(f"/v1/jobs/{running}/events?limit=1000").json()["data"]
        statuses = [(e["data"]["status"], e["message"]) for e in events if e["type"] == "status"]
        assert ("queued", "lease expired: the runner stopped") in statuses
