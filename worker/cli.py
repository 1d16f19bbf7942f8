"""``grait worker``: a Celery worker for the GPU queue (and the reaper's light queue).

One job at a time (``--pool solo``: the task runs in this process and the job's stages in
a child process, so one worker per GPU). ``--beat`` embeds the beat scheduler that sends
``grait.reap`` periodically: run exactly one worker with ``--beat`` per deployment.
Settings come from ``GRAIT_*`` environment variables (``worker.celery_app``).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", default="gpu,light", help="comma-separated (gpu,light)")
    parser.add_argument("--beat", action="store_true", help="also run the reaper schedule")
    parser.add_argument("--name", default=None, help="worker node name (default celery@host)")
    parser.add_argument("--loglevel", default="INFO")


def run(args: argparse.Namespace) -> int:
    """Start the worker in this process (blocks until it stops); returns its exit code, 2
    (with one line per bad variable) when the ``GRAIT_*`` settings are invalid."""
    from pydantic import ValidationError

    from app.settings import settings_problems

    try:
        from worker.celery_app import app, settings
    except ValidationError as error:
        print(f"error: invalid settings:\n{settings_problems(error)}", file=sys.stderr)
        return 2

    argv = ["worker", "--pool", "solo", "--concurrency", "1", "-Q", args.queues]
    argv += ["--loglevel", args.loglevel, "--without-gossip", "--without-mingle"]
    if args.name:
        argv += ["--hostname", args.name]
    if args.beat:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    try:
        app.worker_main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0
