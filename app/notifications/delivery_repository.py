"""The delivery work queue: claim, finish, park, cancel, retry, purge (parked websocket
deliveries are `parked_repository`; what the beat sweep reads, `sweep_repository`).

Every function scoped to one delivery or notification takes the client id and filters by
it; a delivery task carries the client id in its message, so even a forged or stale
message cannot touch another tenant's row. The beat sweeps and the retention purge are
the only cross-tenant queries (they return the client id of each row for the task
message).

Claim, lease and fence are the leased-work engine's (app/leasing/repository.py), shared
with inbound events: a finish applies only while the row is still `sending` and, when
`attempts` is given, only if it is still the claim that attempt made — a worker whose
lease expired and whose row was re-claimed elsewhere cannot overwrite the newer result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.ids import new_id
from app.leasing import repository as engine
from app.leasing.queue import LeasedQueue
from app.notifications.models import (
    ACTIVE_STATUSES,
    CANCELED,
    DELIVERED,
    FAILED,
    MAX_REPLY_BYTES,
    PENDING,
    RETRYING,
    SENDING,
    SKIPPED,
    Delivery,
    DeliveryAttempt,
)

# The deliveries as a leased-work queue (app/leasing): due when pending/retrying, leased
# while sending. Parked deliveries (pending, no due time) are never due.
QUEUE = LeasedQueue(Delivery, due_statuses=(PENDING, RETRYING), leased_status=SENDING)


def claimed_values(now: datetime, lease_seconds: float) -> dict[str, Any]:
    """What a claim writes: `sending` under a lease, one more attempt."""
    return engine.claimed_values(QUEUE, now, lease_seconds)


async def claim(
    session: AsyncSession, client_id: str, delivery_id: str, *, now: datetime, lease_seconds: float
) -> Delivery | None:
    """Take the delivery for one attempt, or None if it is not due or someone holds it
    (`claim_many` of one)."""
    rows = await claim_many(session, client_id, [delivery_id], now=now, lease_seconds=lease_seconds)
    return rows[0] if rows else None


async def claim_many(
    session: AsyncSession,
    client_id: str,
    delivery_ids: Sequence[str],
    *,
    now: datetime,
    lease_seconds: float,
) -> list[Delivery]:
    """Claim a batch (one task message) in one UPDATE (`leasing.repository.claim_ids`); the
    claimed rows by id. A `sending` row whose lease expired is claimable too (its worker
    died), so the sweep's doorbell for an expired lease goes through this same call."""
    return await engine.claim_ids(
        session, QUEUE, client_id, delivery_ids, now=now, lease_seconds=lease_seconds
    )


async def claim_due(
    session: AsyncSession, client_id: str, *, now: datetime, lease_seconds: float, limit: int
) -> list[Delivery]:
    """Claim up to `limit` of the client's due deliveries, oldest first; concurrent callers
    get disjoint rows (`leasing.repository.claim_due`)."""
    return await engine.claim_due(
        session, QUEUE, now=now, lease_seconds=lease_seconds, limit=limit, client_id=client_id
    )


async def get(session: AsyncSession, client_id: str, delivery_id: str) -> Delivery | None:
    """One delivery of the client."""
    query = select(Delivery).where(
        col(Delivery.client_id) == client_id, col(Delivery.id) == delivery_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def _finish(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    *,
    from_statuses: Sequence[str],
    attempts: int | None,
    values: dict[str, Any],
) -> bool:
    return await engine.finish_one(
        session,
        QUEUE,
        client_id,
        delivery_id,
        attempts=attempts,
        from_statuses=from_statuses,
        values=values,
    )


async def mark_delivered(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    *,
    now: datetime,
    attempts: int | None = None,
) -> bool:
    """`sending` → `delivered`; False if the row was not ours to finish."""
    return await _finish(
        session,
        client_id,
        delivery_id,
        from_statuses=(SENDING,),
        attempts=attempts,
        values={"status": DELIVERED, "delivered_at": now, "updated_at": now, "last_error": None},
    )


async def mark_retrying(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    *,
    now: datetime,
    next_attempt_at: datetime,
    error: str | None,
    attempts: int | None = None,
) -> bool:
    """`sending` → `retrying`, due again at `next_attempt_at`."""
    return await _finish(
        session,
        client_id,
        delivery_id,
        from_statuses=(SENDING,),
        attempts=attempts,
        values={
            "status": RETRYING,
            "next_attempt_at": next_attempt_at,
            "last_error": error,
            "updated_at": now,
        },
    )


async def mark_failed(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    *,
    now: datetime,
    error: str | None,
    attempts: int | None = None,
) -> bool:
    """→ `failed` (the dead letter), from any status that still owes work."""
    return await _finish(
        session,
        client_id,
        delivery_id,
        from_statuses=ACTIVE_STATUSES,
        attempts=attempts,
        values={"status": FAILED, "last_error": error, "updated_at": now},
    )


async def mark_skipped(
    session: AsyncSession, client_id: str, delivery_id: str, *, now: datetime, reason: str
) -> bool:
    """→ `skipped` (e.g. the recipient's preference turned the channel off)."""
    return await _finish(
        session,
        client_id,
        delivery_id,
        from_statuses=ACTIVE_STATUSES,
        attempts=None,
        values={"status": SKIPPED, "skip_reason": reason, "updated_at": now},
    )


async def park(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    *,
    now: datetime,
    attempts: int | None = None,
) -> bool:
    """`sending` → parked: `pending` with no due time, until its user connects.

    The sweep never sees it (`next_attempt_at` is NULL); `claim_parked` takes it.
    """
    return await _finish(
        session,
        client_id,
        delivery_id,
        from_statuses=(SENDING,),
        attempts=attempts,
        values={"status": PENDING, "next_attempt_at": None, "updated_at": now},
    )


async def record_attempt(
    session: AsyncSession,
    client_id: str,
    delivery: Delivery,
    *,
    now: datetime,
    outcome: str,
    duration_ms: int,
    response_code: int | None = None,
    reply: str | None = None,
    error: str | None = None,
    served_by: str | None = None,
) -> DeliveryAttempt:
    """Store one attempt of the delivery; the reply is cut to 4 KB (UTF-8 safe)."""
    if delivery.client_id != client_id:
        raise ValueError("delivery belongs to another client")
    if reply is not None:
        reply = reply.encode()[:MAX_REPLY_BYTES].decode(errors="ignore")
    attempt = DeliveryAttempt(
        id=new_id(),
        client_id=client_id,
        delivery_id=delivery.id,
        notification_id=delivery.notification_id,
        attempted_at=now,
        outcome=outcome,
        response_code=response_code,
        reply=reply,
        duration_ms=duration_ms,
        error=error,
        served_by=served_by,
    )
    session.add(attempt)
    await session.flush()
    return attempt


async def list_attempts(
    session: AsyncSession,
    client_id: str,
    notification_id: str,
    *,
    limit: int,
    after: str | None = None,
) -> list[tuple[DeliveryAttempt, str, dict[str, Any]]]:
    """`limit + 1` attempts of a notification in order, each with its channel and recipient."""
    query = (
        select(DeliveryAttempt, col(Delivery.channel), col(Delivery.recipient))
        .join(Delivery, col(Delivery.id) == col(DeliveryAttempt.delivery_id))
        .where(
            and_(
                col(DeliveryAttempt.client_id) == client_id,
                col(DeliveryAttempt.notification_id) == notification_id,
            )
        )
    )
    if after:
        query = query.where(col(DeliveryAttempt.id) > after)
    query = query.order_by(col(DeliveryAttempt.id)).limit(limit + 1)
    return [(row[0], row[1], row[2]) for row in (await session.execute(query)).all()]


async def cancel_pending(
    session: AsyncSession, client_id: str, notification_id: str, *, now: datetime
) -> list[str]:
    """Cancel the deliveries of a notification not yet sent (pending, retrying); their ids.

    A `sending` delivery is mid-attempt and is left to finish.
    """
    result = await session.execute(
        update(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.notification_id) == notification_id,
            col(Delivery.status).in_((PENDING, RETRYING)),
        )
        .values(status=CANCELED, lease_until=None, updated_at=now)
        .returning(col(Delivery.id))
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


async def requeue_failed(
    session: AsyncSession, client_id: str, notification_id: str, *, now: datetime
) -> list[str]:
    """Make a notification's failed deliveries due now with a fresh attempt budget; ids."""
    result = await session.execute(
        update(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.notification_id) == notification_id,
            col(Delivery.status) == FAILED,
        )
        .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None, updated_at=now)
        .returning(col(Delivery.id))
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())
