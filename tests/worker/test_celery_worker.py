"""Celery workers on Redis and PostgreSQL: durable, resumable, cancellable jobs (issue 8).

Real processes on loopback: a private ``redis-server``, ``grait worker`` processes (a
reaper on the ``light`` queue with the embedded beat; ``gpu`` workers that the tests
kill), the API in-process with ``GRAIT_QUEUE=celery``, the session's PostgreSQL database.
Leases last 3 s and the reaper runs every second, so a killed worker's job is requeued
within seconds. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.worker.conftest import Service
from tests.worker.processes import Worker, job_children, wait_for

pytestmark = pytest.mark.slow

# A grait job with stages long enough to be killed in the middle (features, train). The
# features stage reports progress once per gradient-buffer group, and the buffer's default
# budget (half the free memory) holds the tiny world's 120 items in one group: a 1 MB budget
# cuts groups of 8 items, and batches of 2 make the stage last a few seconds.
LONG_JOB: dict[str, Any] = {
    "method": {"type": "grait", "n_ik": 16, "n_idk": 16},
    "features": {"dim": 1024, "lora_r": 4, "warmup_max_items": 48, "warmup_epochs": 3},
    "hyperparameters": {"lora_r": 4, "epochs": 16, "batch_size": 8, "checkpoint_every": 4},
    "runtime": {"batch_size": 2, "memory_budget_mb": 1},
    "seed": 7,
}
STAGES = ("probe", "split", "features", "select", "train", "evaluate")  # report["stages"]
JOB_TIMEOUT = 150


def started_stages(service: Service, job_id: str) -> list[str]:
    return [e["stage"] for e in service.events(job_id) if e["type"] == "stage_started"]


def wait_stage(service: Service, job_id: str, stage: str, min_done: int = 1) -> None:
    """Wait until ``job_id`` runs ``stage`` with at least ``min_done`` units done."""

    def reached() -> bool:
        job = service.job(job_id)
        assert job["status"] not in ("succeeded", "failed", "cancelled"), job
        progress = job["progress"] or {}
        return job["stage"] == stage and (progress.get("done") or 0) >= min_done

    wait_for(reached, JOB_TIMEOUT, f"job {job_id} in stage {stage}", every=0.1)


@pytest.fixture(scope="module")
def reference(service: Service, worker_env: dict[str, str], tmp_path_factory) -> dict[str, Any]:
    """An uninterrupted run of ``LONG_JOB`` (its own worker and cache). Its message is sent
    twice (the API's and a duplicate): ``test_duplicate_delivery_runs_once`` checks that."""
    folder = tmp_path_factory.mktemp("reference")
    worker = Worker(worker_env, folder / "gpu.log", "--queues", "gpu", "--name", "ref@%h")
    worker.start(GRAIT_STAGE_CACHE_DIR=str(folder / "cache"))
    try:
        job_id = service.create(**LONG_JOB)
        service.client.app.state.queue.enqueue(job_id)  # type: ignore[attr-defined]
        started = time.monotonic()
        job = service.wait_terminal(job_id, JOB_TIMEOUT)
        seconds = time.monotonic() - started
        wait_for(lambda: b"not claimed" in (folder / "gpu.log").read_bytes(), 30, "duplicate")
    finally:
        worker.stop()
    assert job["status"] == "succeeded", job
    events = service.events(job_id)
    return {"id": job_id, "job": job, "events": events, "seconds": seconds}


def test_worker_process_loads_no_torch_and_is_configured_for_long_jobs() -> None:
    code = (
        "import sys, worker.tasks as t\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'fastapi')]\n"
        "c = t.app.conf\n"
        "print(heavy, c.task_acks_late, c.task_reject_on_worker_lost, c.worker_prefetch_multiplier,"
        " c.task_ignore_result, c.accept_content, sorted(k for k in t.app.tasks if 'grait' in k))\n"
    )
    env = {**os.environ, "GRAIT_BROKER_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    expected = "[] True True 1 True ['json'] ['grait.reap', 'grait.run_job']"
    assert result.stdout.strip() == expected


def test_duplicate_delivery_runs_once(service: Service, reference: dict[str, Any]) -> None:
    job = reference["job"]
    assert job["attempt"] == 1
    statuses = [e["data"]["status"] for e in reference["events"] if e["type"] == "status"]
    running = [status for status in statuses if status == "running"]
    assert len(running) == 1, running
    assert started_stages(service, reference["id"]) == list(STAGES)


@pytest.mark.parametrize(("stage", "min_done"), [("features", 1), ("train", 14)])
def test_killed_worker_resumes_with_the_same_result(
    service: Service,
    gpu_worker: Callable[..., Worker],
    reference: dict[str, Any],
    stage: str,
    min_done: int,
) -> None:
    worker = gpu_worker()
    job_id = service.create(**LONG_JOB)
    wait_stage(service, job_id, stage, min_done)
    children = wait_for(lambda: job_children(job_id), 10, "the job's child process")
    worker.kill()
    # The child dies with its parent (PR_SET_PDEATHSIG): no orphan keeps running the job.
    wait_for(lambda: all(map(_gone, children)), 10, "the orphaned child to die")
    gpu_worker()
    job = service.wait_terminal(job_id, JOB_TIMEOUT)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    finished_before = STAGES[: STAGES.index(stage)]
    cached = {name: block["cached"] for name, block in job["result"]["stages"].items()}
    assert all(cached[name] for name in finished_before), cached
    restarted = started_stages(service, job_id)
    for name in finished_before:
        assert restarted.count(name) <= 2, restarted  # announced, then found in the cache
    assert job["result"]["eval"] == reference["job"]["result"]["eval"]


def _gone(pid: int) -> bool:
    """The process exited (no entry, or a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_stopped_worker_requeues_its_job(
    service: Service, gpu_worker: Callable[..., Worker]
) -> None:
    worker = gpu_worker()
    job_id = service.create(**LONG_JOB)
    wait_stage(service, job_id, "features")
    assert worker.process is not None
    worker.process.terminate()  # SIGTERM, as `docker stop` sends: warm shutdown
    worker.process.wait(30)
    assert not job_children(job_id)
    assert service.job(job_id)["status"] == "queued"  # given back at once, not at lease expiry
    gpu_worker()
    job = service.wait_terminal(job_id, JOB_TIMEOUT)
    assert (job["status"], job["attempt"]) == ("succeeded", 2), job


def test_cancel_during_a_stage(service: Service, gpu_worker: Callable[..., Worker]) -> None:
    gpu_worker()
    job_id = service.create(**LONG_JOB)
    wait_stage(service, job_id, "features")
    wait_for(lambda: job_children(job_id), 10, "the job's child process")
    asked = time.monotonic()
    response = service.client.post(f"/v1/jobs/{job_id}/cancel", headers=service.headers)
    assert response.status_code in (200, 202), response.text
    job = service.wait_terminal(job_id, 8 + 4)
    assert job["status"] == "cancelled", job
    assert time.monotonic() - asked <= 8 + 2
    wait_for(lambda: not job_children(job_id), 5, "the child to exit")
    stages = started_stages(service, job_id)
    assert "select" not in stages and "train" not in stages, stages


def test_crashing_job_fails_after_max_attempts_and_others_still_run(
    service: Service, gpu_worker: Callable[..., Worker]
) -> None:
    gpu_worker()
    doomed = service.create(seed=3)
    killed: set[int] = set()

    def kill_children() -> bool:
        for pid in job_children(doomed):
            if pid not in killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
        return service.job(doomed)["status"] in ("succeeded", "failed", "cancelled")

    wait_for(kill_children, 90, f"job {doomed} to give up", every=0.1)
    job = service.job(doomed)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "attempts_exhausted"
    assert job["attempt"] == 3 and len(killed) == 3
    other = service.create(seed=4)
    assert service.wait_terminal(other, JOB_TIMEOUT)["status"] == "succeeded"


def test_redis_restart_loses_no_job(
    service: Service, gpu_worker: Callable[..., Worker], redis_server: Any, reaper: Worker
) -> None:
    gpu_worker()
    jobs = [service.create(seed=10 + n) for n in range(3)]
    wait_for(lambda: service.job(jobs[0])["status"] == "running", 60, "the first job to run")
    assert [service.job(job_id)["status"] for job_id in jobs[1:]] == ["queued", "queued"]
    redis_server.kill()  # the queued jobs' messages are gone (no persistence)
    time.sleep(2)
    redis_server.start()
    ends = [service.wait_terminal(job_id, JOB_TIMEOUT)["status"] for job_id in jobs]
    assert ends == ["succeeded"] * 3
    # The reaper re-sent the jobs whose messages were lost.
    log = reaper.log.read_text(errors="replace")
    assert jobs[1] in log and jobs[2] in log
