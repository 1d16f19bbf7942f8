"""``grait serve [--host --port --workers]``: the REST service with the embedded defaults.

With no configuration it uses a SQLite file and an artifact folder under ``./grait-data``
(``GRAIT_DATA_DIR``); ``GRAIT_DATABASE_URL`` and the other ``GRAIT_`` settings switch it to
production services without code changes.

The server is uvicorn; the request limits (body cap and timeouts, request slots, stream
caps) are ASGI middleware of the app (``app.edge``), so they hold under any ASGI server.
``--workers N`` runs N processes (for PostgreSQL; with SQLite keep 1): each has its own
slots, stream quota and key cache, and they share one UI signing key.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (default 1; PostgreSQL only)"
    )


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
    if args.workers <= 1:
        uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
        return 0
    if not os.environ.get("GRAIT_UI_SESSION_KEY"):
        # Every worker must sign and check UI cookies with the same key.
        os.environ["GRAIT_UI_SESSION_KEY"] = secrets.token_urlsafe(32)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
    )
    return 0
