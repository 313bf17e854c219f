"""Channel quotas in the worker (API.md §8): e-mails per hour per client, webhooks per
second per endpoint.

A claimed delivery over its channel's quota is *deferred*, not failed: it goes back to
`pending` (never attempted) or `retrying` with `next_attempt_at` at the quota window's
reset, its claim's attempt given back and no attempt row written, so the sweep rings it
again when the window opens and it is sent then. Quotas are counted in the shared `limits`
storage (app/ratelimit/policies.py), so every worker process draws on one budget.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.clock import utcnow
from app.notifications.models import PENDING, RETRYING, SENDING, Delivery
from app.observability.metrics import DEFERRALS
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")


async def defer(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    *,
    attempts: int,
    until: datetime,
    now: datetime,
) -> bool:
    """Give a claimed delivery back, due at `until`, without counting the claim's attempt;
    False if the row was not ours (fenced on `attempts` like every finish)."""
    result = await session.execute(
        update(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.id) == delivery_id,
            col(Delivery.status) == SENDING,
            col(Delivery.attempts) == attempts,
        )
        .values(
            # Back to what it was before the claim: never attempted → pending.
            status=case((col(Delivery.attempts) <= 1, PENDING), else_=RETRYING),
            attempts=col(Delivery.attempts) - 1,
            next_attempt_at=until,
            lease_until=None,
            updated_at=now,
        )
        .returning(col(Delivery.id))
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def defer_if_over_quota(rt: Runtime, delivery: Delivery) -> bool:
    """Count the delivery against its channel's quota; over it, defer the delivery to the
    window's reset and return True (the caller sends nothing and records nothing)."""
    try:
        stats = await rt.limits.hit_channel(
            delivery.client_id, delivery.channel, delivery.endpoint_id
        )
    except Exception:
        # The quota's storage is down: sending beats holding every delivery back.
        log.exception("channel quota unavailable; sending anyway")
        return False
    if stats is None or stats.allowed:
        return False
    until = datetime.fromtimestamp(stats.reset_at, timezone.utc)
    async with rt.db.session() as session:
        deferred = await defer(
            session,
            delivery.client_id,
            delivery.id,
            attempts=delivery.attempts,
            until=until,
            now=utcnow(),
        )
        await session.commit()
    if deferred:
        DEFERRALS.labels(delivery.channel).inc()
    return True
