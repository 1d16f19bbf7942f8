"""``grait demo``: the main job of the project end to end, over HTTP, on the toy world.

1. Build (or reuse) the toy knowledge world in ``<cache>/toyworld/<size>-seed0``, with
   progress bars; that is where the service's runner finds model ``toyworld/<size>``.
2. Start the REST service in this process (uvicorn on a free port, data in
   ``<cache>/demo-service``) and create an API key for tenant ``demo``.
3. Upload the world's ``choice`` datasets (reused when the same file is already there),
   submit a ``cor_rait`` and a ``grait`` job with Idempotency-Keys derived from the dataset
   ids and the config (a rerun reuses finished jobs), follow both jobs' events with a
   progress bar per stage and print the comparison table of their reports.

``<cache>`` is ``--cache-dir``, else ``$GRAIT_CACHE_DIR``, else ``~/.cache/grait``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grait_cli.client import GraitClient
from grait_cli.common import follow_job, print_report_table
from grait_cli.states import TERMINAL_STATUSES, JobStatus

if TYPE_CHECKING:
    from app.storage import ArtifactStore

METHODS = ("cor_rait", "grait")
SPLITS = {"train": "train", "id": "test_id", "ood": "test_ood"}
TENANT = "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("tiny", "small"), default="small", help="toy world size")
    parser.add_argument("--seed", type=int, default=0, help="the jobs' seed (default 0)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: ~/.cache/grait")
    parser.add_argument(
        "--keep-serving", action="store_true", help="keep the service up (Ctrl-C ends it)"
    )


def job_body(size: str, seed: int, datasets: dict[str, str], method: str) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body of one demo job."""
    return {
        "model": f"toyworld/{size}",
        "task": "choice",
        "training_dataset": datasets["train"],
        "eval_datasets": {"id": datasets["id"], "ood": datasets["ood"]},
        "method": {"type": method, "n_ik": 150, "n_idk": 150},
        "hyperparameters": {"lora_r": 16, "epochs": 3, "batch_size": 8},
        "seed": seed,
    }


def idempotency_key(body: dict[str, Any], attempt: int = 0) -> str:
    """A key derived from the body (dataset ids and config); ``attempt`` > 0 after a failure."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    return f"demo-{digest}" + (f"-r{attempt}" if attempt else "")


def run(args: argparse.Namespace) -> int:
    from app.main import create_app
    from app.storage import ArtifactStore
    from grait_cli.inprocess import serve_in_thread
    from grait_cli.progress import ProgressBars
    from grait_engine.toyworld.cache import default_cache_dir, ensure_world

    started = time.monotonic()
    cache = args.cache_dir or default_cache_dir()
    print(f"== toy knowledge world ({args.size}) in {cache / 'toyworld'}", flush=True)
    with ProgressBars() as bars:
        world = ensure_world(args.size, 0, cache, progress=bars.update)
    print("reused from cache" if world.cached else f"built in {world.stats['total_seconds']} s")
    app = create_app(demo_settings(cache))
    with serve_in_thread(app) as url:
        print(f"\n== service at {url} (data in {cache / 'demo-service'})", flush=True)
        key = create_key(app)
        with GraitClient(url, key) as client:
            jobs = run_jobs(client, world, args.size, args.seed)
            print_summary(client, jobs, url, ArtifactStore(app.state.settings.artifacts))
            print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
            if args.keep_serving:
                wait_for_interrupt(url, key)
    return 0 if all(job["status"] == JobStatus.SUCCEEDED for job in jobs.values()) else 1


def demo_settings(cache: Path) -> Any:
    """Service settings under ``<cache>/demo-service``, pinned so that ``GRAIT_*`` variables
    of the environment (``GRAIT_CACHE_DIR`` is also the demo's cache) do not move them."""
    from app.settings import Settings

    data = cache / "demo-service"
    return Settings(
        data_dir=data,
        toyworld_dir=cache / "toyworld",
        database_url=f"sqlite:///{data}/grait.db",
        artifact_dir=data / "artifacts",
        stage_cache_dir=data / "cache",
        queue="local",
        local_runner=True,
    )


def create_key(app: Any) -> str:
    """A new API key of tenant ``demo``, created in-process in the service's database."""
    from app.auth import create_api_key
    from app.db.session import unit_of_work

    with unit_of_work(app.state.session_factory) as session:
        key, _ = create_api_key(session, TENANT)
    return key


def upload_datasets(client: GraitClient, world: Any) -> dict[str, str]:
    """Upload the world's choice datasets; a file already uploaded (same sha256) is reused."""
    existing = {(d["task"], d["sha256"]): d["id"] for d in client.list_datasets(limit=100)["data"]}
    ids = {}
    for name, split in SPLITS.items():
        path = world.data_path("choice", split)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        dataset_id = existing.get(("choice", digest))
        if dataset_id is None:
            dataset = client.upload_dataset(path, "choice")
            dataset_id = dataset["id"]
            print(f"uploaded {path.name}: {dataset_id} ({dataset['n_items']} items)")
        else:
            print(f"reusing {path.name}: {dataset_id}")
        ids[name] = dataset_id
    return ids


def submit(client: GraitClient, body: dict[str, Any]) -> dict[str, Any]:
    """Create the job, or get the earlier one of the same key; a failed or cancelled earlier
    job is replaced by a new one (next key)."""
    for attempt in range(50):
        job = client.create_job(body, idempotency_key=idempotency_key(body, attempt))
        if job["status"] not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return job
    raise RuntimeError("too many failed demo jobs; remove <cache>/demo-service")


def run_jobs(client: GraitClient, world: Any, size: str, seed: int) -> dict[str, dict[str, Any]]:
    """Upload, submit both jobs, follow them to their end; returns method -> final job."""
    datasets = upload_datasets(client, world)
    submitted = {}
    for method in METHODS:
        job = submit(client, job_body(size, seed, datasets, method))
        reused = job["status"] == JobStatus.SUCCEEDED
        print(f"{method} job {job['id']} {job['status']}" + (" (reused)" if reused else ""))
        submitted[method] = job
    print(flush=True)
    finished = {}
    for method, job in submitted.items():
        if job["status"] not in TERMINAL_STATUSES:
            job = follow_job(client, job["id"], label=method)
        finished[method] = job
        error = job.get("error") or {}
        print(f"{method} job {job['id']} {job['status']} {error.get('message', '')}".rstrip())
    return finished


def print_summary(
    client: GraitClient, jobs: dict[str, dict[str, Any]], url: str, store: ArtifactStore
) -> None:
    """The comparison table and where to look next."""
    reports = [
        (m, client.report(j["id"])) for m, j in jobs.items() if j["status"] == JobStatus.SUCCEEDED
    ]
    if reports:
        print("\n== results on the choice test sets (rates in %; THS vs the basic prompt)")
        print_report_table(reports)
    print(f"\nreport pages (while the demo runs; --keep-serving keeps them up): {url}/ui")
    for method, job in jobs.items():
        print(f"  {method}: {url}/ui/jobs/{job['id']}")
    print("job folders (report.md, plots/, predictions, adapter):")
    for method, job in jobs.items():
        print(f"  {method}: {store.job_dir(job['id'])}")
    data = store.root.parent
    print(f"to browse them later: GRAIT_DATA_DIR={data} grait serve")
    print(f"  with a key from: GRAIT_DATA_DIR={data} grait keys create --tenant {TENANT}")


def wait_for_interrupt(url: str, key: str) -> None:
    """Keep serving until Ctrl-C."""
    print(f"serving {url} until Ctrl-C; log in to {url}/ui with the API key {key}", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
