"""API load: many clients polling jobs and their events, against uvicorn on PostgreSQL.

Creates a fresh PostgreSQL database (``--pg``, dropped at the end), migrates it, creates a
tenant, uploads a small dataset, creates ``--jobs`` jobs (they stay queued: no runner) and
gives each ``--events`` events. Then starts the service (``uvicorn``, ``--workers``
processes) and runs ``--clients`` concurrent clients (asyncio + httpx) for ``--seconds``:
each repeatedly gets ``GET /v1/jobs/{id}`` and ``GET /v1/jobs/{id}/events?limit=50`` for a
random job, waiting ``--interval`` seconds between its polls (0: as fast as it can, a
closed loop where latency is bound to grow with the client count). Prints requests/s,
p50/p99/max latency and the errors (non-200 answers and exceptions).

With ``--baseline REV`` (default: the code before the issue 16 edge work) the same load is
first run against that revision's service (a temporary ``git worktree``, its own fresh
database), then against the working tree, and both are printed side by side. The clients
and the figures are in ``bench/api_load_clients.py``.

    .venv/bin/python bench/api_load.py                       # 200 clients, 30 s, vs baseline
    .venv/bin/python bench/api_load.py --baseline ''         # the working tree only
    .venv/bin/python bench/api_load.py --clients 50 --seconds 10 --interval 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
import psycopg
from api_load_clients import figures, load  # bench/api_load_clients.py (sys.path[0])
from sqlalchemy.engine import make_url

HERE = os.path.dirname(os.path.abspath(__file__))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ROOT = os.path.dirname(HERE)
# The last commit before issue 16's HTTP edge work (auth per request in the route).
BASELINE = "fd65a4c"


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
        "--baseline", default=BASELINE, help="git revision to compare with ('': none)"
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=0,
        help="admit at most this many requests at once in the service (0: no limit)",
    )
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
        job = {
            "model": "toyworld/tiny",
            "task": "choice",
            "training_dataset": dataset,
            "eval_datasets": {"id": dataset},
            "method": {"type": "cor_rait"},
        }
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
    url: str, data_dir: str, args: argparse.Namespace, code_dir: str
) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "GRAIT_DATABASE_URL": url,
        "GRAIT_DATA_DIR": data_dir,
        "GRAIT_QUEUE": "local",
        "GRAIT_LOCAL_RUNNER": "false",
        # Room for every seeded (queued) job of the one bench tenant.
        "GRAIT_MAX_ACTIVE_JOBS_PER_TENANT": str(max(20, args.jobs)),
    }
    if args.workers == 1:
        command = [sys.executable, "-c", SERVE, str(port), "1", str(args.max_inflight)]
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    env["PYTHONPATH"] = code_dir
    process = subprocess.Popen(command, env=env, cwd=code_dir)
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


def measure(args: argparse.Namespace, code_dir: str) -> dict:
    """Run the load against the service of ``code_dir`` on a fresh database; the stats."""
    url, name = create_database(args.pg)
    process = None
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            process, base = start_service(url, data_dir, args, code_dir)
            key, jobs = seed(base, url, args.jobs, args.events)
            return asyncio.run(load(base, key, jobs, args))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        drop_database(args.pg, name)


def baseline_tree(revision: str, parent: str) -> str:
    """A detached worktree of ``revision`` under ``parent`` (removed by the caller)."""
    path = os.path.join(parent, "baseline")
    subprocess.run(
        ["git", "-C", ROOT, "worktree", "add", "--detach", "--force", path, revision],
        check=True,
        capture_output=True,
    )
    return path


def main() -> int:
    args = parse_args()
    runs: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as parent:
        if args.baseline:
            tree = baseline_tree(args.baseline, parent)
            try:
                runs[f"baseline {args.baseline}"] = figures(measure(args, tree))
            finally:
                subprocess.run(
                    ["git", "-C", ROOT, "worktree", "remove", "--force", tree],
                    check=False,
                    capture_output=True,
                )
        runs["working tree"] = figures(measure(args, ROOT))
    print(
        f"clients={args.clients} seconds={args.seconds} interval={args.interval}s "
        f"workers={args.workers} max_inflight={args.max_inflight or 'none'} jobs={args.jobs} events/job={args.events}"
    )
    names = list(runs)
    print(f"{'':<12}" + "".join(f"{name:>24}" for name in names))
    for row in runs[names[-1]]:
        print(f"{row:<12}" + "".join(f"{runs[name][row]:>24}" for name in names))
    return 0 if runs["working tree"]["errors"] == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
