"""Queries of bulk recovery: find a tenant's failed deliveries by filter, lock their
notifications, and make them due again with a fresh attempt budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.notifications.models import FAILED, PENDING, Delivery, Notification


@dataclass(frozen=True, slots=True)
class FailedFilter:
    """Which failed deliveries of a tenant to re-queue."""

    channel: str | None = None
    endpoint_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def failed_deliveries(
    session: AsyncSession, client_id: str, where: FailedFilter, limit: int
) -> list[tuple[str, str]]:
    """(delivery id, notification id) of up to `limit` failed deliveries matching, oldest
    first (ids are time-ordered)."""
    query = select(col(Delivery.id), col(Delivery.notification_id)).where(
        col(Delivery.client_id) == client_id, col(Delivery.status) == FAILED
    )
    if where.channel is not None:
        query = query.where(col(Delivery.channel) == where.channel)
    if where.endpoint_id is not None:
        query = query.where(col(Delivery.endpoint_id) == where.endpoint_id)
    if where.created_after is not None:
        query = query.where(col(Delivery.created_at) >= where.created_after)
    if where.created_before is not None:
        query = query.where(col(Delivery.created_at) < where.created_before)
    result = await session.execute(query.order_by(col(Delivery.id)).limit(limit))
    return [(row[0], row[1]) for row in result.all()]


async def lock_notifications(
    session: AsyncSession, client_id: str, notification_ids: Sequence[str]
) -> None:
    """Lock these notifications' rows in id order (PostgreSQL), as `retry` locks one: their
    status refreshes then run after each other."""
    await session.execute(
        select(col(Notification.id))
        .where(
            col(Notification.client_id) == client_id,
            col(Notification.id).in_(sorted(notification_ids)),
        )
        .order_by(col(Notification.id))
        .with_for_update()
    )


async def requeue(
    session: AsyncSession, client_id: str, delivery_ids: Sequence[str], *, now: datetime
) -> list[tuple[str, str]]:
    """Make these deliveries due now with a fresh attempt budget if they are still failed;
    (id, notification id) of those that were."""
    if not delivery_ids:
        return []
    result = await session.execute(
        update(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.id).in_(list(delivery_ids)),
            col(Delivery.status) == FAILED,
        )
        .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None, updated_at=now)
        .returning(col(Delivery.id), col(Delivery.notification_id))
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1]) for row in result.all()]
