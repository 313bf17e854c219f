"""The analytics summary of one client (API.md §8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics import repository
from app.analytics.schemas import (
    ActiveInactive,
    AnalyticsSummary,
    DeliveriesSummary,
    Latency,
    NotificationsSummary,
)
from app.notifications.models import FAILED
from app.tenants.schemas import RoomType

#: Latency figures are rounded to the millisecond (the databases differ past that).
LATENCY_DIGITS = 3


async def summary(
    session: AsyncSession,
    client_id: str,
    since: datetime,
    until: datetime,
    live_connections: int,
) -> AnalyticsSummary:
    """Messages, rooms, notifications, deliveries and latency of the client in the period."""
    rooms = {t.value: ActiveInactive() for t in RoomType}
    for room_type, active, count in await repository.rooms_by_type(session, client_id):
        entry = rooms.setdefault(room_type, ActiveInactive())
        if active:
            entry.active += count
        else:
            entry.inactive += count
    notifications = dict(await repository.notifications_by_status(session, client_id, since, until))
    by_channel: dict[str, dict[str, int]] = {}
    for channel, status, count in await repository.deliveries_by_channel_status(
        session, client_id, since, until
    ):
        by_channel.setdefault(channel, {})[status] = count
    count, p50, p95 = await repository.latency_percentiles(session, client_id, since, until)
    return AnalyticsSummary(
        since=since,
        until=until,
        messages_sent=await repository.messages_sent(session, client_id, since, until),
        rooms=rooms,
        notifications=NotificationsSummary(
            total=sum(notifications.values()), by_status=notifications
        ),
        deliveries=DeliveriesSummary(
            total=sum(sum(s.values()) for s in by_channel.values()),
            failed=sum(s.get(FAILED, 0) for s in by_channel.values()),
            by_channel=by_channel,
            latency_seconds=Latency(
                count=count,
                p50=None if p50 is None else round(p50, LATENCY_DIGITS),
                p95=None if p95 is None else round(p95, LATENCY_DIGITS),
            ),
        ),
        live_connections=live_connections,
    )
