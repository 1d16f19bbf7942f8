"""``grait keys``: API keys in the configured database.

- ``create --tenant NAME``: create a key (and the tenant, if new) and print it once;
- ``list [--tenant NAME]``: one line per key: prefix, tenant, created, active or revoked;
- ``revoke PREFIX``: revoke a key (its 12-hex prefix, ``grait_<prefix>``, or the whole key).
  It is refused at once by every API process and ends the UI logins made with it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.auth import create_api_key
from app.db.migrate import current_is_head, upgrade_to_head
from app.db.models import ApiKey, Tenant
from app.db.session import make_engine, make_session_factory, rows_changed, unit_of_work
from app.db.types import utcnow
from app.settings import get_settings

PREFIX = re.compile(r"(?:grait_)?([0-9a-f]{12})(?:_.*)?")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an API key for a tenant (created if new)")
    create.add_argument("--tenant", required=True, help="tenant name")
    listing = sub.add_parser("list", help="list keys (prefix, tenant, created, status)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = sub.add_parser("revoke", help="revoke a key by its prefix (grait_<prefix>_...)")
    revoke.add_argument("prefix", help="the key's 12 hex prefix (or the whole key)")


def run(args: argparse.Namespace) -> int:
    """Run the action in the configured database; exit status 0, 1 (not found or not
    migrated) or 2 (bad input). Keys are printed on stdout, messages on stderr."""
    settings = get_settings()
    url = settings.database_url
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_migrate_at_startup:
        upgrade_to_head(url)
    elif not current_is_head(url):
        print("the database is not migrated: run `alembic upgrade head`", file=sys.stderr)
        return 1
    actions: dict[str, Callable[[Session, argparse.Namespace], int]] = {
        "create": _create,
        "list": _list,
        "revoke": _revoke,
    }
    engine = make_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            return actions[args.action](session, args)
    finally:
        engine.dispose()


def _create(session: Session, args: argparse.Namespace) -> int:
    try:
        key, record = create_api_key(session, args.tenant)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session.flush()
    print(key)
    print(
        f"tenant {args.tenant} ({record.tenant_id}): store this key now, it is not shown again",
        file=sys.stderr,
    )
    return 0


def _list(session: Session, args: argparse.Namespace) -> int:
    query = (
        select(ApiKey.prefix, Tenant.name, ApiKey.created_at, ApiKey.revoked_at)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .order_by(Tenant.name, ApiKey.created_at)
    )
    if args.tenant:
        query = query.where(Tenant.name == args.tenant)
    rows = session.execute(query).all()
    print(f"{'PREFIX':<18} {'TENANT':<24} {'CREATED (UTC)':<20} STATUS")
    for prefix, tenant, created, revoked in rows:
        status = "active" if revoked is None else f"revoked {revoked:%Y-%m-%d %H:%M}"
        print(f"grait_{prefix:<12} {tenant:<24} {created:%Y-%m-%d %H:%M:%S}  {status}")
    if not rows:
        print("no keys", file=sys.stderr)
    return 0


def _revoke(session: Session, args: argparse.Namespace) -> int:
    match = PREFIX.fullmatch(args.prefix.strip())
    if match is None:
        print("error: give the key's 12 hex prefix (grait_<prefix>)", file=sys.stderr)
        return 2
    prefix = match.group(1)
    statement = (
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if rows_changed(session, statement) == 0:
        print(f"error: no active key with prefix {prefix}", file=sys.stderr)
        return 1
    print(f"revoked grait_{prefix}", file=sys.stderr)
    return 0
