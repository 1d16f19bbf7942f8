"""``python -m worker.child JOB_ID OWNER``: run one claimed job, then exit.

Started by the local runner and by the Celery task with the settings in its environment
(``GRAIT_*``). On Linux it asks to be killed when its parent dies (``PR_SET_PDEATHSIG``):
a killed worker must not leave a child running the job while the lease expires and another
worker starts it again. Exit status 0 means an outcome was recorded;
``EXIT_DATABASE_UNAVAILABLE`` (75) that the database stayed unreachable (the runner gives
the job back without using up an attempt); any other, that nothing was recorded.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

from app.db.session import make_engine, make_session_factory
from app.execution.lease import EXIT_DATABASE_UNAVAILABLE
from app.settings import Settings

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux only: SIGKILL this process when its parent exits; exit now if it already has."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    expected = os.environ.get("GRAIT_PARENT_PID")
    if expected and os.getppid() != int(expected):
        sys.exit(3)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m worker.child JOB_ID OWNER", file=sys.stderr)
        return 2
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from worker.execute import DATABASE_UNAVAILABLE, execute_job

    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        status = execute_job(make_session_factory(engine), settings, args[0], args[1])
    finally:
        engine.dispose()
    logging.info("job %s ended: %s", args[0], status)
    if status == DATABASE_UNAVAILABLE:
        return EXIT_DATABASE_UNAVAILABLE
    return 0 if status != "lost" else 1


if __name__ == "__main__":
    sys.exit(main())
