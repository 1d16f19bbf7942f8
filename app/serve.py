"""``grait serve [--host --port]``: the REST service with the embedded defaults.

With no configuration it uses a SQLite file and an artifact folder under ``./grait-data``
(``GRAIT_DATA_DIR``); ``GRAIT_DATABASE_URL`` and the other ``GRAIT_`` settings switch it to
production services without code changes.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")


def run(args: argparse.Namespace) -> int:
    """Serve until stopped; exit status 2 (with one line per bad variable) when the
    ``GRAIT_*`` settings are invalid."""
    import uvicorn
    from pydantic import ValidationError

    from app.main import create_app
    from app.settings import get_settings, settings_problems

    try:
        get_settings()
    except ValidationError as error:
        print(f"error: invalid settings:\n{settings_problems(error)}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0
