"""Signed, expiring UI login tokens (the ``/ui`` cookie), bound to one API key.

A token is ``<key prefix>.<expiry, unix seconds>.<signature>``, the signature an HMAC-SHA256,
under the server's session secret, of the prefix, the expiry and the key's stored secret
hash. The cookie so holds no usable API key; a token is valid only until it expires and
only while its key is active: revoking the key (``grait keys revoke``) ends the login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from sqlalchemy.orm import Session

from app.auth import KEY_PATTERN, hash_secret
from app.db.models import Tenant
from app.db.repositories import ApiKeyRepository

TOKEN = re.compile(r"([0-9a-f]{12})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def signing_key(configured: str) -> bytes:
    """The signing key: ``GRAIT_UI_SESSION_KEY``, else a random one for this process
    (then logins end when the process restarts)."""
    return configured.encode() if configured else secrets.token_bytes(32)


def _sign(secret: bytes, prefix: str, expires: int, secret_sha256: str) -> str:
    message = f"{prefix}.{expires}.{secret_sha256}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_token(secret: bytes, api_key: str, now: float, lifetime: float) -> str:
    """A token for ``api_key`` (already authenticated) valid for ``lifetime`` seconds."""
    match = KEY_PATTERN.fullmatch(api_key)
    if match is None:
        raise ValueError("not an API key")
    prefix, key_secret = match.groups()
    expires = int(now + lifetime)
    return f"{prefix}.{expires}.{_sign(secret, prefix, expires, hash_secret(key_secret))}"


def tenant_of_token(session: Session, secret: bytes, token: str, now: float) -> Tenant | None:
    """The tenant of a valid, unexpired token whose key is still active; else None."""
    match = TOKEN.fullmatch(token)
    if match is None:
        return None
    prefix, expires_text, signature = match.groups()
    expires = int(expires_text)
    if expires <= now:
        return None
    record = ApiKeyRepository(session).get_active_by_prefix(prefix)
    if record is None:
        return None
    expected = _sign(secret, prefix, expires, record.secret_sha256)
    if not hmac.compare_digest(signature, expected):
        return None
    return session.get(Tenant, record.tenant_id)
