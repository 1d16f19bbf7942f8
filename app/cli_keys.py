"""``grait keys create --tenant NAME``: create an API key and print it once."""

from __future__ import annotations

import argparse
import sys

from app.auth import create_api_key
from app.db.migrate import current_is_head, upgrade_to_head
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.settings import get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an API key for a tenant (created if new)")
    create.add_argument("--tenant", required=True, help="tenant name")


def run(args: argparse.Namespace) -> int:
    """Create the key in the configured database; print the key (stdout) once."""
    settings = get_settings()
    url = settings.database_url
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_migrate_at_startup:
        upgrade_to_head(url)
    elif not current_is_head(url):
        print("the database is not migrated: run `alembic upgrade head`", file=sys.stderr)
        return 1
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            key, record = create_api_key(session, args.tenant)
            tenant_id = record.tenant_id
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(key)
    print(
        f"tenant {args.tenant} ({tenant_id}): store this key now, it is not shown again",
        file=sys.stderr,
    )
    return 0
