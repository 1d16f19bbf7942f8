"""Webhook commands and queries, scoped to one tenant: create (the only answer holding the
secret), list, get, delete, and the delivery log.

A webhook URL must be ``http``/``https`` without user info, at most ``MAX_URL_LENGTH``
characters, and name a host of ``GRAIT_WEBHOOK_ALLOWED_HOSTS`` (exact hostnames or IP
literals, case-insensitive): anything else is a 422 naming ``url``. The dispatcher checks
the host again before every send (``host_allowed``), so narrowing the setting stops
deliveries to hosts that were allowed before.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.models import Webhook, WebhookDelivery
from app.db.pagination import newest_first_page
from app.db.types import new_id
from app.errors import Conflict, NotFound
from app.jobs.limits import invalid
from app.jobs.states import WEBHOOK_EVENTS
from app.settings import Settings

MAX_URL_LENGTH = 2000  # the column's length
DEFAULT_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
WEBHOOK_PREFIX = "wh"  # webhook ids: wh_<hex>


def normal_host(host: str) -> str:
    """A hostname or IP literal in one spelling: lower case, no IPv6 brackets, IP
    addresses in their canonical form (``0:0::1`` -> ``::1``)."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def host_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """True when ``url``'s host is one of ``allowed_hosts`` (compared by ``normal_host``)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return bool(host) and normal_host(host or "") in {normal_host(h) for h in allowed_hosts}


def check_url(url: str, settings: Settings) -> str:
    """``url`` if it may be a webhook destination, else a 422 problem naming ``url``."""
    if len(url) > MAX_URL_LENGTH:
        raise invalid("url", f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise invalid("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        raise invalid("url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise invalid("url", "must be an http or https URL")
    if "@" in parts.netloc:
        raise invalid("url", "must not contain a user name or password")
    if not parts.hostname:
        raise invalid("url", "must name a host")
    if port == 0:
        raise invalid("url", "port 0 is not a valid destination")
    if not host_allowed(url, settings.webhook_allowed_hosts):
        # Name the host (the client sent it) but not the operator's list.
        raise invalid(
            "url",
            f"host {parts.hostname!r} is not an allowed webhook destination "
            "(the operator's GRAIT_WEBHOOK_ALLOWED_HOSTS)",
        )
    return url


def check_events(events: Sequence[str] | None) -> list[str]:
    """The subscribed event names (default ``DEFAULT_EVENTS``), in ``WEBHOOK_EVENTS`` order;
    a 422 naming ``events`` for an empty list or an unknown name."""
    if events is None:
        return list(DEFAULT_EVENTS)
    if not events:
        raise invalid("events", f"must name at least one of {', '.join(WEBHOOK_EVENTS)}")
    unknown = [name for name in events if name not in WEBHOOK_EVENTS]
    if unknown:
        raise invalid(
            "events", f"unknown event {unknown[0][:40]!r}; one of {', '.join(WEBHOOK_EVENTS)}"
        )
    return [name for name in WEBHOOK_EVENTS if name in set(events)]


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 43 URL-safe characters (256 random bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def create_webhook(
    session: Session, tenant_id: str, url: str, events: Sequence[str] | None, settings: Settings
) -> Webhook:
    """A new webhook of ``tenant_id`` (its ``secret`` is readable on the returned row: the
    caller shows it once). 422 for a bad URL or events; 409 past ``max_webhooks_per_tenant``.
    """
    webhook = Webhook(
        id=new_id(WEBHOOK_PREFIX),
        tenant_id=tenant_id,
        url=check_url(url, settings),
        events=check_events(events),
        secret=new_secret(),
    )
    count = session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.tenant_id == tenant_id)
    )
    if (count or 0) >= settings.max_webhooks_per_tenant:
        raise Conflict(
            f"this tenant has {count} webhooks, the most allowed "
            "(GRAIT_MAX_WEBHOOKS_PER_TENANT); delete one first"
        )
    session.add(webhook)
    session.flush()
    return webhook


def get_webhook(session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    """The tenant's webhook; another tenant's (or no) webhook is a 404 problem."""
    webhook = session.scalar(
        select(Webhook).where(Webhook.tenant_id == tenant_id, Webhook.id == webhook_id)
    )
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id[:64]!r}")
    return webhook


def list_webhooks(
    session: Session, tenant_id: str, *, after: str | None, limit: int
) -> tuple[Sequence[Webhook], bool]:
    """The tenant's webhooks, newest first: (up to ``limit`` rows, whether more follow)."""
    query = select(Webhook).where(Webhook.tenant_id == tenant_id)
    return newest_first_page(session, query, Webhook.id, after=after, limit=limit)


def delete_webhook(session: Session, tenant_id: str, webhook_id: str) -> None:
    """Delete the tenant's webhook and its delivery log (404 if not the tenant's). Pending
    deliveries are deleted with it, so nothing more is sent."""
    webhook = get_webhook(session, tenant_id, webhook_id)
    # Explicitly, not only by the foreign key's cascade: it does not depend on the database.
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    session.execute(delete(Webhook).where(Webhook.id == webhook.id))


def list_deliveries(
    session: Session, tenant_id: str, webhook_id: str, *, after: str | None, limit: int
) -> tuple[Sequence[WebhookDelivery], bool]:
    """The delivery log of the tenant's webhook, newest first (404 if not the tenant's)."""
    webhook = get_webhook(session, tenant_id, webhook_id)
    query = select(WebhookDelivery).where(
        WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.tenant_id == tenant_id
    )
    return newest_first_page(session, query, WebhookDelivery.id, after=after, limit=limit)
