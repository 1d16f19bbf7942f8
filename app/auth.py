"""API keys: ``grait_<prefix>_<secret>``; only sha256(secret) is stored.

The prefix (12 hex) finds the row; the secret's hash is compared in constant time.
Free of FastAPI: ``app.api.deps`` turns ``authenticate`` into a dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from app.db.models import ApiKey, Tenant
from app.db.repositories import ApiKeyRepository, TenantRepository
from app.db.session import unit_of_work
from app.db.types import new_id
from app.errors import Unauthorized

KEY_PATTERN = re.compile(r"grait_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})")
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(session: Session, tenant_name: str) -> tuple[str, ApiKey]:
    """Create a key for ``tenant_name`` (the tenant too, if new); return (key string, row).

    The key string is shown once; only its hash is stored. The caller commits.
    """
    if not TENANT_NAME.fullmatch(tenant_name):
        raise ValueError("tenant name: 1-100 of letters, digits, '.', '_', '-'")
    tenant = TenantRepository(session).get_or_create(tenant_name)
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id("key"), tenant_id=tenant.id, prefix=prefix, secret_sha256=hash_secret(secret)
    )
    ApiKeyRepository(session).add(record)
    return f"grait_{prefix}_{secret}", record


def authenticate(session: Session, authorization: str | None) -> Tenant:
    """The tenant of a valid ``Authorization: Bearer <key>`` header, else ``Unauthorized``."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer API key")
    match = KEY_PATTERN.fullmatch(token.strip())
    if match is None:
        raise Unauthorized("invalid API key")
    prefix, secret = match.groups()
    record = ApiKeyRepository(session).get_active_by_prefix(prefix)
    # Hash even when the prefix is unknown, so timing says nothing about which prefixes exist.
    expected = record.secret_sha256 if record is not None else "0" * 64
    if not hmac.compare_digest(hash_secret(secret), expected) or record is None:
        raise Unauthorized("invalid API key")
    tenant = session.get(Tenant, record.tenant_id)
    if tenant is None:
        raise Unauthorized("invalid API key")
    return tenant


class TenantCache:
    """Recently checked keys -> their tenant, for ``ttl`` seconds (thread-safe).

    Entries are keyed by the sha256 of the whole header (no key is kept in memory) and hold
    the detached tenant. Only successes are kept. A revoked key keeps working in this
    process until its entry expires: at most ``ttl`` seconds (``auth_cache_seconds``).
    """

    MAX_ENTRIES = 10_000

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Tenant]] = {}

    def get(self, digest: str, now: float) -> Tenant | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[0] <= now:
                return None
            return entry[1]

    def put(self, digest: str, tenant: Tenant, now: float) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()  # crude but bounded: many keys at once is rare
            self._entries[digest] = (now + self.ttl, tenant)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate_header(
    factory: sessionmaker[Session], authorization: str | None, cache: TenantCache | None = None
) -> Tenant:
    """``authenticate`` in its own short unit of work, or from ``cache``: the tenant comes
    back detached (its columns stay readable) and no database connection is held after."""
    digest = hash_secret(authorization or "")
    now = time.monotonic()
    if cache is not None and (tenant := cache.get(digest, now)) is not None:
        return tenant
    with unit_of_work(factory) as session:
        tenant = authenticate(session, authorization)
    if cache is not None:
        cache.put(digest, tenant, now)
    return tenant
