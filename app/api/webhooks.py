"""``/v1/webhooks``: create (the only answer with the signing secret), list, get, delete, and
each webhook's delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SessionDep, SettingsDep, TenantDep
from app.api.pagination import After, Limit, Page, check_cursor
from app.db.models import Webhook, WebhookDelivery
from app.jobs.states import WEBHOOK_EVENTS, DeliveryStatus
from app.webhooks import service
from app.webhooks.outbox import DELIVERY_PREFIX

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    """``url``: where deliveries are POSTed (a host the operator allows); ``events``: the
    job status changes to deliver (default: succeeded, failed, cancelled)."""

    model_config = ConfigDict(extra="forbid")

    # Bounds against huge bodies; the exact rules (422 naming the field) are the service's.
    url: str = Field(max_length=4 * service.MAX_URL_LENGTH)
    events: list[str] | None = Field(default=None, max_length=4 * len(WEBHOOK_EVENTS))


class WebhookOut(BaseModel):
    id: str
    object: Literal["webhook"] = "webhook"
    url: str
    events: list[str]
    created_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookOut:
        return cls(
            id=webhook.id, url=webhook.url, events=webhook.events, created_at=webhook.created_at
        )


class WebhookCreated(WebhookOut):
    """The create answer: the webhook and its ``secret`` (shown this once only)."""

    secret: str


class WebhookList(Page[WebhookOut]):
    """A page of the tenant's webhooks, newest first."""


class DeliveryOut(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    webhook_id: str
    event: str
    job_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime | None  # None once delivered or failed
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        pending = delivery.status == DeliveryStatus.PENDING
        return cls(
            id=delivery.id,
            webhook_id=delivery.webhook_id,
            event=delivery.event,
            job_id=delivery.job_id,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if pending else None,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            payload=delivery.payload,
        )


class DeliveryList(Page[DeliveryOut]):
    """A page of a webhook's deliveries, newest first."""


@router.post("", status_code=201, response_model=WebhookCreated)
def create(
    body: WebhookCreate, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> WebhookCreated:
    """A new webhook; 201 with its ``secret`` (never shown again). 422 names ``url`` (not
    http/https, user info, too long, a host outside ``GRAIT_WEBHOOK_ALLOWED_HOSTS``) or
    ``events``; 409 past ``GRAIT_MAX_WEBHOOKS_PER_TENANT``."""
    webhook = service.create_webhook(session, tenant.id, body.url, body.events, settings)
    return WebhookCreated(**WebhookOut.of(webhook).model_dump(), secret=webhook.secret)


@router.get("", response_model=WebhookList)
def list_webhooks(
    session: SessionDep, tenant: TenantDep, after: After = None, limit: Limit = 20
) -> WebhookList:
    """The tenant's webhooks, newest first (no secrets)."""
    rows, has_more = service.list_webhooks(
        session, tenant.id, after=check_cursor(after, service.WEBHOOK_PREFIX), limit=limit
    )
    return WebhookList(data=[WebhookOut.of(row) for row in rows], has_more=has_more)


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: str, session: SessionDep, tenant: TenantDep) -> WebhookOut:
    return WebhookOut.of(service.get_webhook(session, tenant.id, webhook_id))


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete the webhook and its delivery log; nothing more is sent to it."""
    service.delete_webhook(session, tenant.id, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_id: str, session: SessionDep, tenant: TenantDep, after: After = None, limit: Limit = 20
) -> DeliveryList:
    """The webhook's deliveries, newest first: status, attempts, last answer."""
    rows, has_more = service.list_deliveries(
        session, tenant.id, webhook_id, after=check_cursor(after, DELIVERY_PREFIX), limit=limit
    )
    return DeliveryList(data=[DeliveryOut.of(row) for row in rows], has_more=has_more)
