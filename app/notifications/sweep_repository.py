"""The relay's sweep queries: due deliveries, expired leases and the attempt purge.

The only delivery queries across every client (beat runs them for all tenants); each row
they return carries its client id, and everything done with it afterwards is scoped.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Table, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.notifications.models import (
    PENDING,
    RETRYING,
    SENDING,
    Delivery,
    DeliveryAttempt,
)

_ATTEMPTS: Table = DeliveryAttempt.__table__  # type: ignore[attr-defined]


class DueDelivery(NamedTuple):
    """A delivery the sweep should ring the doorbell for; `at` + `id` is the page cursor."""

    client_id: str
    id: str
    at: datetime


async def due_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[DueDelivery]:
    """Pending/retrying deliveries due by `now`, oldest first (index ix_deliveries_due).

    All clients (the beat sweep). Page with `after=(last.at, last.id)`: ringing the
    doorbell does not change a row, so the cursor is what moves the sweep forward.
    """
    due_at = col(Delivery.next_attempt_at)
    query = select(col(Delivery.client_id), col(Delivery.id), due_at).where(
        col(Delivery.status).in_((PENDING, RETRYING)),
        due_at <= now,
        or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
    )
    if after is not None:
        query = query.where(
            or_(due_at > after[0], and_(due_at == after[0], col(Delivery.id) > after[1]))
        )
    query = query.order_by(due_at, col(Delivery.id)).limit(limit)
    rows = (await session.execute(query)).all()
    return [DueDelivery(r[0], r[1], r[2]) for r in rows if r[2] is not None]


class SweepRow(NamedTuple):
    """A due delivery as the sweep judges it: when it became due, and whether it is a
    fresh send (never attempted, due at creation: the API rang for it at commit)."""

    client_id: str
    id: str
    at: datetime
    fresh: bool


async def due_for_sweep(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[SweepRow]:
    """`due_deliveries` with what the sweep needs to decide whether to ring each row."""
    due_at = col(Delivery.next_attempt_at)
    query = select(
        col(Delivery.client_id),
        col(Delivery.id),
        due_at,
        col(Delivery.attempts),
        col(Delivery.created_at),
    ).where(
        col(Delivery.status).in_((PENDING, RETRYING)),
        due_at <= now,
        or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
    )
    if after is not None:
        query = query.where(
            or_(due_at > after[0], and_(due_at == after[0], col(Delivery.id) > after[1]))
        )
    query = query.order_by(due_at, col(Delivery.id)).limit(limit)
    rows = (await session.execute(query)).all()
    return [
        SweepRow(r[0], r[1], r[2], r[3] == 0 and r[2] <= r[4]) for r in rows if r[2] is not None
    ]


async def expired_leases(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[DueDelivery]:
    """`sending` deliveries whose lease ended before `now` (index ix_deliveries_lease).

    All clients (the beat sweep); `at` is the lease end; page like `due_deliveries`.
    """
    lease = col(Delivery.lease_until)
    query = select(col(Delivery.client_id), col(Delivery.id), lease).where(
        col(Delivery.status) == SENDING, lease < now
    )
    if after is not None:
        query = query.where(
            or_(lease > after[0], and_(lease == after[0], col(Delivery.id) > after[1]))
        )
    query = query.order_by(lease, col(Delivery.id)).limit(limit)
    rows = (await session.execute(query)).all()
    return [DueDelivery(r[0], r[1], r[2]) for r in rows if r[2] is not None]


async def purge_attempts(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` attempts older than `before` (all clients: retention); how many.

    Call repeatedly, one transaction per batch, until it returns less than `limit`.
    """
    oldest = (
        select(col(DeliveryAttempt.id))
        .where(col(DeliveryAttempt.attempted_at) < before)
        .order_by(col(DeliveryAttempt.attempted_at))
        .limit(limit)
    )
    result = await session.execute(
        delete(DeliveryAttempt)
        .where(col(DeliveryAttempt.id).in_(oldest))
        .returning(col(DeliveryAttempt.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.all())
