"""Webhook endpoints as the relay uses them: targets for a send, signing secrets opened for
a delivery, and each attempt's bookkeeping (first version; the endpoints CRUD builds on it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import Outcome
from app.channels.base import WebhookEndpoint as EndpointTarget
from app.core.clock import utcnow
from app.core.crypto import SecretBox
from app.realtime.bus import EventBus
from app.webhooks import repository
from app.webhooks.models import WebhookEndpoint


async def subscribed_endpoints(
    session: AsyncSession, client_id: str, event_type: str
) -> list[WebhookEndpoint]:
    """The client's enabled endpoints that receive `event_type`."""
    return await repository.subscribed(session, client_id, event_type)


async def endpoints_by_ids(
    session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
) -> list[WebhookEndpoint]:
    """The client's endpoints among `endpoint_ids` (another client's ids are absent)."""
    return await repository.by_ids(session, client_id, endpoint_ids)


async def endpoints_for_delivery(
    session: AsyncSession, box: SecretBox, client_id: str, endpoint_ids: Sequence[str]
) -> dict[str, EndpointTarget]:
    """The enabled endpoints among `endpoint_ids`, by id, with their secrets opened: the
    current one first, then the previous one while its rotation grace lasts."""
    now = utcnow()
    out: dict[str, EndpointTarget] = {}
    for endpoint in await repository.by_ids(session, client_id, endpoint_ids):
        if endpoint.disabled:
            continue
        secrets = [box.open(endpoint.secret_sealed)]
        if (
            endpoint.previous_secret_sealed
            and endpoint.previous_secret_expires_at is not None
            and endpoint.previous_secret_expires_at > now
        ):
            secrets.append(box.open(endpoint.previous_secret_sealed))
        out[endpoint.id] = EndpointTarget(endpoint.id, endpoint.url, tuple(secrets))
    return out


async def record_outcome(
    session: AsyncSession,
    bus: EventBus,
    client_id: str,
    endpoint_id: str,
    outcome: Outcome,
    now: datetime,
) -> None:
    """Count the attempt's success or failure on the endpoint; a 410 disables it."""
    if outcome.delivered:
        await repository.record_success(session, client_id, endpoint_id)
        return
    await repository.record_failure(session, client_id, endpoint_id, now=now)
    if outcome.disable_endpoint:
        await repository.disable(
            session, client_id, endpoint_id, reason="endpoint answered 410 Gone", now=now
        )
