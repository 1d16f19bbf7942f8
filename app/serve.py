"""``grait serve [--host --port]``: the REST service with the embedded defaults.

With no configuration it uses a SQLite file and an artifact folder under ``./grait-data``
(``GRAIT_DATA_DIR``); ``GRAIT_DATABASE_URL`` and the other ``GRAIT_`` settings switch it to
production services without code changes.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0
