"""Signing webhook deliveries (HMAC-SHA256) and checking a signature, as a receiver does.

Each delivery carries ``Grait-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256 over ``f"{t}.{body}"`` (the raw request body, UTF-8) keyed with the webhook's
secret. Signing the timestamp with the body lets a receiver refuse replays of old requests.
``verify`` depends on the standard library only, so receivers can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Grait-Signature"
EVENT_HEADER = "Grait-Event"
DELIVERY_HEADER = "Grait-Delivery"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Grait-Signature`` value for ``body`` sent at ``timestamp`` (default: now)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={signature(secret, stamp, body)}"


def verify(
    secret: str, header: str, body: bytes, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """True when ``header`` (a ``Grait-Signature`` value) signs ``body`` with ``secret`` and
    its timestamp is within ``tolerance_s`` seconds of ``now`` (default: the current time).

    Any ``v1`` entry may match (room for a secret rotation later); comparisons are
    constant-time. A malformed header is False, never an exception.
    """
    stamp: int | None = None
    candidates = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            stamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if stamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        return False
    expected = signature(secret, stamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
