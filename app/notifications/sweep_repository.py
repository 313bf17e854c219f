"""The relay's sweep queries: due deliveries, expired leases (the leased-work engine's
sweep, app/leasing/sweep.py, on the deliveries) and the attempt purge.

The only delivery queries across every client (beat runs them for all tenants); each row
they return carries its client id, and everything done with it afterwards is scoped.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.leasing import sweep as leased
from app.leasing.sweep import Due
from app.notifications.delivery_repository import QUEUE
from app.notifications.models import Delivery, DeliveryAttempt

_ATTEMPTS: Table = DeliveryAttempt.__table__  # type: ignore[attr-defined]


# A delivery the sweep should ring the doorbell for; `at` + `id` is the page cursor.
DueDelivery = Due


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
    return await leased.due(session, QUEUE, now=now, limit=limit, after=after)


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
    rows = await leased.due_rows(
        session,
        QUEUE,
        now=now,
        limit=limit,
        after=after,
        extra=(col(Delivery.attempts), col(Delivery.created_at)),
    )
    return [SweepRow(r[0], r[1], r[2], r[3] == 0 and r[2] <= r[4]) for r in rows]


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
    return await leased.expired_leases(session, QUEUE, now=now, limit=limit, after=after)


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
