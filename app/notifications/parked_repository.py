"""Parked websocket deliveries: the in-app inbox's queue of notifications for users who
were offline, flushed when they connect and failed as "expired" by the sweep.

A parked delivery is `pending` with no due time (`delivery_repository.park` puts it
there), so the due-sweep never sees it; index ix_deliveries_parked serves every query here.
Scoped by client id, except `expire_parked` (the beat sweep, all clients).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.notifications import delivery_repository as deliveries
from app.notifications.models import FAILED, PENDING, WEBSOCKET, Delivery


def _parked(
    client_id: str | BindParameter[str], user_id: str | BindParameter[str]
) -> list[ColumnElement[bool]]:
    return [
        col(Delivery.client_id) == client_id,
        col(Delivery.recipient_user_id) == user_id,
        col(Delivery.channel) == WEBSOCKET,
        col(Delivery.status) == PENDING,
        col(Delivery.next_attempt_at).is_(None),
    ]


async def parked_for_user(
    session: AsyncSession, client_id: str, user_id: str, *, limit: int
) -> list[Delivery]:
    """The user's parked websocket deliveries, oldest first (index ix_deliveries_parked)."""
    query = (
        select(Delivery).where(*_parked(client_id, user_id)).order_by(col(Delivery.id)).limit(limit)
    )
    return list((await session.execute(query)).scalars().all())


# Built once (its cache key too): every user connect runs it.
_HAS_PARKED = (
    select(col(Delivery.id)).where(*_parked(bindparam("client_id"), bindparam("user_id"))).limit(1)
)


async def has_parked(conn: AsyncConnection, client_id: str, user_id: str) -> bool:
    """Whether the user has any parked websocket delivery (one indexed probe)."""
    params = {"client_id": client_id, "user_id": user_id}
    return (await conn.execute(_HAS_PARKED, params)).first() is not None


async def expire_parked(
    session: AsyncSession, *, created_before: datetime, now: datetime, limit: int
) -> list[tuple[str, str]]:
    """Fail up to `limit` parked deliveries created before `created_before` (all clients:
    the beat sweep), with error "expired"; (client_id, notification_id) of each."""
    parked = and_(
        col(Delivery.channel) == WEBSOCKET,
        col(Delivery.status) == PENDING,
        col(Delivery.next_attempt_at).is_(None),
        col(Delivery.created_at) < created_before,
    )
    ids = select(col(Delivery.id)).where(parked).limit(limit)
    result = await session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(ids), parked)
        .values(status=FAILED, last_error="expired", lease_until=None, updated_at=now)
        .returning(col(Delivery.client_id), col(Delivery.notification_id))
        .execution_options(synchronize_session=False)
    )
    return [(r[0], r[1]) for r in result.all()]


async def claim_parked(
    session: AsyncSession,
    client_id: str,
    user_id: str,
    *,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[Delivery]:
    """Claim up to `limit` of the user's parked deliveries at once (the connect flush).

    Atomic like `claim`: two connections of the same user flushing together each get
    a disjoint set.
    """
    ids = select(col(Delivery.id)).where(*_parked(client_id, user_id)).limit(limit)
    stmt = (
        update(Delivery)
        .where(col(Delivery.id).in_(ids), *_parked(client_id, user_id))
        .values(deliveries.claimed_values(now, lease_seconds))
        .returning(Delivery)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    rows = list((await session.execute(stmt)).scalars().all())
    return sorted(rows, key=lambda d: d.id)
