"""How many deliveries a batch's notifications have on one channel: what a provider route's
bulk threshold (`min_recipients`) compares with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.notifications.models import Delivery


async def per_delivery(
    session: AsyncSession, client_id: str, channel: str, delivery_ids: Sequence[str]
) -> Mapping[str, int]:
    """For each of the client's `delivery_ids`, the number of `channel` deliveries of its
    notification: one grouped count over the (notification, channel) index."""
    if not delivery_ids:
        return {}
    owners = select(col(Delivery.id), col(Delivery.notification_id)).where(
        col(Delivery.client_id) == client_id, col(Delivery.id).in_(list(delivery_ids))
    )
    notification_of = {d: n for d, n in (await session.execute(owners)).all()}
    if not notification_of:
        return {}
    counted = (
        select(col(Delivery.notification_id), func.count())
        .where(
            col(Delivery.notification_id).in_(set(notification_of.values())),
            col(Delivery.channel) == channel,
        )
        .group_by(col(Delivery.notification_id))
    )
    counts = {n: int(c) for n, c in (await session.execute(counted)).all()}
    return {d: counts.get(n, 0) for d, n in notification_of.items()}
