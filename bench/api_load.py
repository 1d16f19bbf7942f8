"""API load: many clients polling jobs and their events, against uvicorn on PostgreSQL.

Creates a fresh PostgreSQL database (``--pg``, dropped at the end), migrates it, creates a
tenant, uploads a small dataset, creates ``--jobs`` jobs (they stay queued: no runner) and
gives each ``--events`` events. Then starts the service (``uvicorn``, ``--workers``
processes) and runs ``--clients`` concurrent clients (asyncio + httpx) for ``--seconds``:
each repeatedly gets ``GET /v1/jobs/{id}`` and ``GET /v1/jobs/{id}/events?limit=50`` for a
random job, waiting ``--interval`` seconds between its polls (0: as fast as it can, a
closed loop where latency is bound to grow with the client count). Prints requests/s,
p50/p99/max latency and the errors (non-200 answers and exceptions).

    .venv/bin/python bench/api_load.py                       # 200 clients, 30 s
    .venv/bin/python bench/api_load.py --clients 50 --seconds 10 --interval 0
"""

from __future__ import annotations

import os
import sys

# bench/select.py shadows the stdlib ``select``: drop this folder from the import path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))  # the repository root

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL maintenance database URL")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--events", type=int, default=100, help="events per job")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--max-inflight", type=int, default=0,
        help="admit at most this many requests at once in the service (0: no limit)",
    )  # fmt: skip
    return parser.parse_args()


def create_database(admin_url: str) -> tuple[str, str]:
    """(SQLAlchemy URL of a fresh migrated database, its name)."""
    from app.db.migrate import upgrade_to_head

    name = f"grait_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade_to_head(url)
    return url, name


def drop_database(admin_url: str, name: str) -> None:
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(base: str, url: str, n_jobs: int, n_events: int) -> tuple[str, list[str]]:
    """(API key, job ids): a tenant, a dataset and ``n_jobs`` queued jobs with events."""
    from app.auth import create_api_key
    from app.db.session import make_engine, make_session_factory, unit_of_work
    from app.jobs.events import add_event

    engine = make_engine(url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        key, _ = create_api_key(session, "bench")
    headers = {"Authorization": f"Bearer {key}"}
    rows = [
        {"id": f"c{i}", "question": f"Q{i}?", "choices": {"A": "x", "B": "y"}, "answer": "A"}
        for i in range(20)
    ]
    body = "".join(json.dumps(row) + "\n" for row in rows)
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        ct = {"content-type": "application/x-ndjson"}
        dataset = client.post("/v1/datasets?task=choice", content=body, headers=ct).json()["id"]
        job = {"model": "toyworld/tiny", "task": "choice", "training_dataset": dataset,
               "eval_datasets": {"id": dataset}, "method": {"type": "cor_rait"}}  # fmt: skip
        jobs = []
        for _ in range(n_jobs):
            response = client.post("/v1/jobs", json=job)
            response.raise_for_status()
            jobs.append(response.json()["id"])
    with unit_of_work(factory) as session:
        for job_id in jobs:
            for step in range(n_events):
                data = {"done": step, "total": n_events, "eta_seconds": 1.0}
                add_event(session, job_id, "progress", stage="train", message="step", data=data)
    engine.dispose()
    return key, jobs


async def client_loop(
    client: httpx.AsyncClient, jobs: list[str], until: float, interval: float, stats: dict
) -> None:
    await asyncio.sleep(random.random() * max(interval, 0.01))  # spread the first polls
    while time.monotonic() < until:
        job_id = random.choice(jobs)
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events?limit=50"):
            start = time.perf_counter()
            try:
                response = await client.get(path)
                ok, kind = response.status_code == 200, str(response.status_code)
            except httpx.HTTPError as error:
                ok, kind = False, type(error).__name__
            stats["latencies"].append(time.perf_counter() - start)
            if not ok:
                stats["errors"][kind] += 1
        if interval > 0:
            await asyncio.sleep(interval)


async def load(base: str, key: str, jobs: list[str], args: argparse.Namespace) -> dict:
    stats: dict = {"latencies": [], "errors": Counter()}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:
        until = time.monotonic() + args.seconds
        started = time.monotonic()
        loops = [
            client_loop(client, jobs, until, args.interval, stats) for _ in range(args.clients)
        ]
        await asyncio.gather(*loops)
        stats["elapsed"] = time.monotonic() - started
    return stats


# The service under uvicorn. LIMIT > 0 admits at most LIMIT requests at once: each request
# holds a pooled connection from its auth dependency to its teardown, so more requests in
# flight than the pool has connections can block every threadpool thread (see README).
SERVE = """
import asyncio, sys, uvicorn
from app.main import create_app
port, workers, limit = (int(value) for value in sys.argv[1:4])
app = create_app()
gate = asyncio.Semaphore(limit or 1)

async def capped(scope, receive, send):
    if not limit or scope["type"] != "http":
        return await app(scope, receive, send)
    async with gate:
        await app(scope, receive, send)

uvicorn.run(capped, port=port, log_level="warning", access_log=False)
"""


def start_service(
    url: str, data_dir: str, args: argparse.Namespace
) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GRAIT_DATABASE_URL": url, "GRAIT_DATA_DIR": data_dir,
           "GRAIT_QUEUE": "local", "GRAIT_LOCAL_RUNNER": "false"}  # fmt: skip
    if args.workers == 1:
        command = [sys.executable, "-c", SERVE, str(port), "1", str(args.max_inflight)]
    else:
        command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                   "--port", str(port), "--workers", str(args.workers), "--log-level",
                   "warning", "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=os.path.dirname(HERE))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the service did not start within 60 s")


def main() -> int:
    args = parse_args()
    url, name = create_database(args.pg)
    process = None
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            process, base = start_service(url, data_dir, args)
            key, jobs = seed(base, url, args.jobs, args.events)
            stats = asyncio.run(load(base, key, jobs, args))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        drop_database(args.pg, name)
    latencies = sorted(stats["latencies"])
    n = len(latencies)
    errors = sum(stats["errors"].values())
    print(f"clients={args.clients} seconds={args.seconds} interval={args.interval}s "
          f"workers={args.workers} max_inflight={args.max_inflight or 'none'} jobs={args.jobs} events/job={args.events}")  # fmt: skip
    print(f"requests: {n}  requests/s: {n / stats['elapsed']:.1f}  errors: {errors} "
          f"{dict(stats['errors'])}")  # fmt: skip
    if n:
        p50, p99 = latencies[n // 2], latencies[min(n - 1, int(n * 0.99))]
        print(f"latency ms: p50 {p50 * 1000:.1f}  p99 {p99 * 1000:.1f}  "
              f"max {latencies[-1] * 1000:.1f}")  # fmt: skip
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
