"""The analytics summary of one client (API.md §8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics import repository, rollup
from app.analytics.schemas import (
    ActiveInactive,
    AnalyticsSummary,
    DeliveriesSummary,
    Latency,
    NotificationsSummary,
    ProviderSummary,
)
from app.notifications.models import FAILED
from app.tenants.schemas import RoomType

#: Latency figures are rounded to the millisecond (the databases differ past that).
LATENCY_DIGITS = 3
#: The fields taken from the latency histograms when the period spans rolled-up hours.
APPROXIMATE_FIELDS = ("deliveries.latency_seconds.p50", "deliveries.latency_seconds.p95")


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
    # Whole hours the rollup job has covered come from the rollups; the edges and the hours
    # after it (the current one) from the deliveries themselves (app.analytics.rollup).
    rolled_until = await repository.rolled_until(session)
    first = rollup.ceil_hour(since)
    last = min(rollup.floor_hour(until), rolled_until) if rolled_until is not None else first
    live = [(since, until)] if first >= last else [(since, first), (last, until)]
    rows = []
    for start, end in live:
        if start < end:
            rows += await repository.deliveries_by_channel_status(session, client_id, start, end)
    if first < last:
        rows += await repository.rolled_deliveries(session, client_id, first, last)
    for channel, status, count in rows:
        statuses = by_channel.setdefault(channel, {})
        statuses[status] = statuses.get(status, 0) + count
    approximate: list[str] = []
    if first >= last:  # nothing rolled up in the period: exact percentiles
        count, p50, p95 = await repository.latency_percentiles(session, client_id, since, until)
    else:
        histogram: dict[int, int] = {}
        parts = await repository.rolled_latency(session, client_id, first, last)
        for start, end in live:
            if start < end:
                parts += await repository.live_latency(session, client_id, start, end)
        for bucket, n in parts:
            histogram[bucket] = histogram.get(bucket, 0) + n
        count = sum(histogram.values())
        p50 = repository.histogram_percentile(histogram, 0.5)
        p95 = repository.histogram_percentile(histogram, 0.95)
        approximate = list(APPROXIMATE_FIELDS) if count else []
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
        providers=await _providers(session, client_id, since, until),
        live_connections=live_connections,
        approximate=approximate,
    )


async def _providers(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> dict[str, ProviderSummary]:
    channels = await repository.provider_channels(session, client_id)
    outcomes: dict[str, dict[str, int]] = {}
    for name, outcome, count in await repository.provider_attempts(
        session, client_id, since, until
    ):
        outcomes.setdefault(name, {})[outcome] = count
    events: dict[str, dict[str, int]] = {}
    for name, kind, count in await repository.provider_event_counts(
        session, client_id, since, until
    ):
        events.setdefault(name, {})[kind] = count
    summaries: dict[str, ProviderSummary] = {}
    for name in sorted(outcomes.keys() | events.keys()):
        by_outcome = outcomes.get(name, {})
        attempts = sum(by_outcome.values())
        delivered = by_outcome.get("delivered", 0)
        summaries[name] = ProviderSummary(
            channel=channels.get(name),
            attempts=attempts,
            by_outcome=by_outcome,
            delivery_rate=round(delivered / attempts, 4) if attempts else None,
            events=events.get(name, {}),
        )
    return summaries
