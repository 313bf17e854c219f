"""Operational events of a tenant (`delivery.exhausted`, `endpoint.disabled`): published to
the tenant's master-key sockets and sent to its webhook endpoints subscribed to them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from pydantic import BaseModel, Field

from app.channels.webhook import WebhookChannel
from app.core.clock import utcnow
from app.core.db import Database
from app.core.doorbell import Doorbell
from app.core.ids import new_id
from app.notifications import repository
from app.notifications.models import Notification
from app.notifications.repository import NewDelivery
from app.realtime.bus import EventBus
from app.realtime.events import DELIVERY_EXHAUSTED, ENDPOINT_DISABLED, client_target
from app.webhooks import service as webhooks

OPERATIONAL_EVENTS = frozenset({DELIVERY_EXHAUSTED, ENDPOINT_DISABLED})
# Operational events go to the tenant's webhook endpoints (API.md): that channel's name.
WEBHOOK = WebhookChannel.name


class DeliveryExhaustedData(BaseModel):
    """`delivery.exhausted`: a delivery failed its last attempt and is a dead letter."""

    delivery_id: str
    notification_id: str
    channel: str = Field(examples=["email"])
    recipient: dict[str, Any] = Field(description="The delivery's resolved recipient.")
    attempts: int = Field(description="Attempts made, the last one included.")
    last_error: str | None = Field(description="Why the last attempt failed.")


class EndpointDisabledData(BaseModel):
    """`endpoint.disabled`: the service disabled a webhook endpoint (it failed every attempt
    for WEBHOOK_DISABLE_AFTER_SECONDS, or answered 410 Gone); PATCH it to re-enable."""

    endpoint_id: str


class OperationalParts(Protocol):
    """What emitting needs (a Runtime has them all)."""

    db: Database
    bus: EventBus
    doorbell: Doorbell


def is_operational(notification: Notification) -> bool:
    """Whether the notification carries an operational event to webhook endpoints."""
    webhook = notification.content.get(WEBHOOK) or {}
    return notification.channels == [WEBHOOK] and webhook.get("event_type") in OPERATIONAL_EVENTS


async def emit_operational(
    parts: OperationalParts,
    client_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    webhooks_too: bool = True,
    exclude_endpoint_ids: Collection[str] = (),
) -> str | None:
    """Publish `event_type` to the tenant's master sockets and, unless `webhooks_too` is
    False, store a notification with one webhook delivery per enabled endpoint subscribed
    to it (minus `exclude_endpoint_ids`, e.g. the endpoint the event is about) and ring for
    them; the notification's id, or None when no endpoint wanted it. Call after commit."""
    notification_id: str | None = None
    delivery_ids: list[str] = []
    if webhooks_too:
        now = utcnow()
        async with parts.db.session() as session:
            endpoints = [
                e
                for e in await webhooks.subscribed_endpoints(session, client_id, event_type)
                if e.id not in exclude_endpoint_ids
            ]
            if endpoints:
                notification = Notification(
                    id=new_id(),
                    client_id=client_id,
                    channels=[WEBHOOK],
                    content={WEBHOOK: {"event_type": event_type, "payload": data}},
                    send_at=now,
                    created_at=now,
                )
                new = [
                    NewDelivery(WEBHOOK, {"endpoint_id": e.id}, endpoint_id=e.id) for e in endpoints
                ]
                ids = await repository.create_notification(
                    session, client_id, notification, new, now=now
                )
                await session.commit()
                notification_id, delivery_ids = notification.id, ids or []
    await parts.bus.publish(client_id, client_target(), event_type, data)
    await parts.doorbell.ring_deliveries(client_id, delivery_ids)
    return notification_id
