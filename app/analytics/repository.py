"""The aggregates behind the summary; each one walks a covering index of its table
(migration 0008), filtered by client and period, so no table rows are read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.messages.models import Message
from app.notifications.models import DELIVERED, Delivery, Notification
from app.rooms.models import Room


async def messages_sent(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> int:
    """Messages created in the period (ix_messages_client_created)."""
    query = select(func.count()).where(
        col(Message.client_id) == client_id,
        col(Message.created_at) >= since,
        col(Message.created_at) < until,
    )
    return int((await session.execute(query)).scalar_one())


async def rooms_by_type(session: AsyncSession, client_id: str) -> list[tuple[str, bool, int]]:
    """(type, is_active, count) of the client's rooms (ix_rooms_client_type_active)."""
    query = (
        select(col(Room.type), col(Room.is_active), func.count())
        .where(col(Room.client_id) == client_id)
        .group_by(col(Room.type), col(Room.is_active))
    )
    return [(r[0], bool(r[1]), int(r[2])) for r in (await session.execute(query)).all()]


async def notifications_by_status(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[str, int]]:
    """(status, count) of the period's notifications (ix_notifications_analytics)."""
    query = (
        select(col(Notification.status), func.count())
        .where(
            col(Notification.client_id) == client_id,
            col(Notification.created_at) >= since,
            col(Notification.created_at) < until,
        )
        .group_by(col(Notification.status))
    )
    return [(r[0], int(r[1])) for r in (await session.execute(query)).all()]


async def deliveries_by_channel_status(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[str, str, int]]:
    """(channel, status, count) of the period's deliveries (ix_deliveries_analytics)."""
    query = (
        select(col(Delivery.channel), col(Delivery.status), func.count())
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.created_at) >= since,
            col(Delivery.created_at) < until,
        )
        .group_by(col(Delivery.channel), col(Delivery.status))
    )
    return [(r[0], r[1], int(r[2])) for r in (await session.execute(query)).all()]


async def latency_percentiles(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> tuple[int, float | None, float | None]:
    """(count, p50, p95) of delivered - created in seconds, for the period's delivered
    deliveries (ix_deliveries_latency, a partial index of delivered rows)."""
    where = [
        col(Delivery.client_id) == client_id,
        col(Delivery.created_at) >= since,
        col(Delivery.created_at) < until,
        col(Delivery.status) == DELIVERED,
        col(Delivery.delivered_at).is_not(None),
    ]
    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect == "postgresql":
        seconds = func.extract("epoch", col(Delivery.delivered_at) - col(Delivery.created_at))
        query = select(
            func.count(),
            func.percentile_cont(0.5).within_group(seconds),
            func.percentile_cont(0.95).within_group(seconds),
        ).where(*where)
        count, p50, p95 = (await session.execute(query)).one()
        return int(count), _num(p50), _num(p95)
    # SQLite (embedded scale): the percentiles in Python, with percentile_cont's definition.
    rows = await session.execute(
        select(col(Delivery.created_at), col(Delivery.delivered_at)).where(*where)
    )
    values = sorted(
        (d - c).total_seconds() for c, d in rows.all() if c is not None and d is not None
    )
    return len(values), percentile(values, 0.5), percentile(values, 0.95)


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont)."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _num(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
