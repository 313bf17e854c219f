"""Delivering (the worker side of the relay, DESIGN.md §4): claim, send, record, finish.

A task message carries up to a hundred delivery ids of one client. They are claimed in one
statement, sent concurrently (bounded), and each result is written as soon as it is known:
a writer (`delivery_results.ResultWriter`) collects whatever results have arrived and
writes them in one transaction (the attempt row, the fenced status change, the endpoint's
bookkeeping), so a slow endpoint holds up only its own deliveries while a burst of fast
ones costs few transactions. Notification statuses are refreshed once per write for the
notifications that reached a final state, under the notification's row lock (sorted,
before any delivery row is touched, the same order cancel and retry use).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.channels.base import (
    ChannelContext,
    DeliveryTarget,
    EmailConfig,
    Outcome,
    OutcomeKind,
    WebhookEndpoint,
)
from app.core.clock import utcnow
from app.core.crypto import SecretBoxError
from app.email import service as email_service
from app.notifications import delivery_repository as deliveries
from app.notifications import finish_repository as finishing
from app.notifications import parked_repository as parking
from app.notifications.delivery_results import AttemptResult, ResultWriter
from app.notifications.models import Delivery, Notification
from app.notifications.quota import defer_if_over_quota
from app.observability.delivery_metrics import observe
from app.runtime import Runtime
from app.webhooks import service as webhooks

log = logging.getLogger("chatapi.notifications")

# Deliveries of one task message in flight at once (each mostly waits on the network).
DELIVERY_CONCURRENCY = 50
# Parked deliveries claimed per round of a connect flush.
FLUSH_BATCH = 500
# Share of the lease one attempt may take; the rest is for recording the result.
ATTEMPT_SHARE_OF_LEASE = 0.9


@dataclass(slots=True)
class _Loaded:
    notifications: dict[str, Notification]
    endpoints: dict[str, WebhookEndpoint]
    email: EmailConfig | None
    problems: dict[str, str]  # channel → why its targets could not be loaded


async def deliver_batch(rt: Runtime, client_id: str, delivery_ids: Sequence[str]) -> int:
    """Claim what is due among `delivery_ids` and deliver it; how many were claimed."""
    async with rt.db.session() as session:
        claimed = await deliveries.claim_many(
            session,
            client_id,
            delivery_ids,
            now=utcnow(),
            lease_seconds=rt.settings.DELIVERY_LEASE_SECONDS,
        )
        await session.commit()
    await _run(rt, client_id, claimed, DELIVERY_CONCURRENCY)
    return len(claimed)


async def flush_parked(rt: Runtime, client_id: str, user_id: str) -> int:
    """Deliver the user's parked websocket notifications (the user connected), oldest
    first, one at a time so they arrive in order; how many were claimed."""
    total = 0
    while True:
        async with rt.db.session() as session:
            claimed = await parking.claim_parked(
                session,
                client_id,
                user_id,
                now=utcnow(),
                lease_seconds=rt.settings.DELIVERY_LEASE_SECONDS,
                limit=FLUSH_BATCH,
            )
            await session.commit()
        total += len(claimed)
        kinds = await _run(rt, client_id, claimed, 1)
        # Parked again (the user left meanwhile) or nothing more: stop, or this would spin.
        if len(claimed) < FLUSH_BATCH or OutcomeKind.PARKED in kinds:
            return total


async def _run(
    rt: Runtime, client_id: str, claimed: list[Delivery], concurrency: int
) -> set[OutcomeKind]:
    if not claimed:
        return set()
    loaded = await _load(rt, client_id, claimed)
    finisher = ResultWriter(rt, client_id, len(claimed))
    limit = asyncio.Semaphore(concurrency)

    async def one(delivery: Delivery) -> None:
        notification = loaded.notifications.get(delivery.notification_id)
        if notification is None:  # deleted with its client meanwhile: nothing to record
            finisher.skip()
            return
        async with limit:
            if await defer_if_over_quota(rt, delivery):  # a deferral, not an attempt
                finisher.skip()
                return
            outcome = await _attempt(rt, delivery, notification, loaded)
        observe(delivery, notification, outcome, rt.settings.delivery_attempt_limit)
        finisher.put(AttemptResult(delivery, notification, outcome))

    results = await asyncio.gather(
        finisher.run(), *(one(d) for d in claimed), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            # Unrecorded rows keep their lease; the sweep re-claims them when it expires.
            log.error("delivering failed", exc_info=result, extra={"client_id": client_id})
    return finisher.kinds


async def _load(rt: Runtime, client_id: str, claimed: list[Delivery]) -> _Loaded:
    loaded = _Loaded({}, {}, None, {})
    async with rt.db.read_session() as session:
        loaded.notifications = await finishing.get_many(
            session, client_id, (d.notification_id for d in claimed)
        )
        endpoint_ids = sorted({d.endpoint_id for d in claimed if d.endpoint_id})
        try:
            if endpoint_ids:
                loaded.endpoints = await webhooks.endpoints_for_delivery(
                    session, rt.secret_box, client_id, endpoint_ids
                )
            if any(d.channel == "email" for d in claimed):
                loaded.email = await email_service.config_for_delivery(
                    session, rt.secret_box, client_id
                )
        except SecretBoxError as exc:
            # Sealed under another SECRET_KEY: retrying cannot help until it is fixed.
            loaded.problems["webhook" if endpoint_ids else "email"] = str(exc)
    return loaded


def _target(delivery: Delivery, loaded: _Loaded) -> DeliveryTarget:
    endpoint = loaded.endpoints.get(delivery.endpoint_id) if delivery.endpoint_id else None
    return DeliveryTarget(
        delivery_id=delivery.id,
        client_id=delivery.client_id,
        user_id=delivery.recipient_user_id,
        email=delivery.recipient.get("email"),
        endpoint=endpoint,
    )


async def _attempt(
    rt: Runtime, delivery: Delivery, notification: Notification, loaded: _Loaded
) -> Outcome:
    """One attempt through the delivery's channel; never raises."""
    limit = rt.settings.delivery_attempt_limit
    if delivery.attempts > limit:
        # Only a worker dying mid-attempt, again and again, gets here (a poison delivery).
        return Outcome(OutcomeKind.FAILED, error=f"no result after {limit} attempts")
    channel = rt.channels.get(delivery.channel)
    if channel is None:
        return Outcome(OutcomeKind.RETRY, error=f"channel {delivery.channel!r} is not loaded here")
    if delivery.channel in loaded.problems:
        return Outcome(OutcomeKind.FAILED, error=loaded.problems[delivery.channel])
    if delivery.endpoint_id and delivery.endpoint_id not in loaded.endpoints:
        return Outcome(OutcomeKind.FAILED, error="the endpoint was deleted or disabled")
    ctx = ChannelContext(
        notification_id=notification.id,
        created_at=notification.created_at,
        attempt=delivery.attempts,
        email=loaded.email if delivery.channel == "email" else None,
        metadata=notification.metadata_,
    )
    content: dict[str, Any] = notification.content.get(delivery.channel, {})
    timeout = rt.settings.DELIVERY_LEASE_SECONDS * ATTEMPT_SHARE_OF_LEASE
    try:
        return await asyncio.wait_for(
            channel.send(_target(delivery, loaded), content, ctx), timeout
        )
    except asyncio.TimeoutError:
        return Outcome(OutcomeKind.RETRY, error=f"timeout: the attempt took over {timeout:.0f}s")
    except Exception as exc:
        log.exception("channel %r raised", delivery.channel)
        return Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}")
