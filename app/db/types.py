"""Portable column types and identifiers (SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Length of the hex part of ids made by ``new_id``.
ID_HEX_LENGTH = 24
# JSON everywhere; JSONB on PostgreSQL.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")
# SQLite autoincrements only an INTEGER PRIMARY KEY.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; naive values are rejected.

    SQLite keeps no offset, so values read back are marked UTC again.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """``<prefix>_<24 hex>``: 12 hex of milliseconds since the epoch, then 12 random hex.

    Ids sort by creation time (to the millisecond), so an id is also a pagination cursor.
    """
    millis = int(time.time() * 1000)
    return f"{prefix}_{millis:012x}{secrets.token_hex(6)}"
