"""The aggregates behind the summary; each one walks a covering index of its table
(migration 0008), filtered by client and period, so no table rows are read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.analytics import rollup
from app.analytics.models import DeliveryRollup, LatencyRollup, RollupState
from app.messages.models import Message
from app.notifications.models import DELIVERED, Delivery, DeliveryAttempt, Notification
from app.providers.models import Provider, ProviderEventRecord
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


async def provider_attempts(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[str, str, int]]:
    """(provider name, outcome, count) of the period's attempts through a provider
    (ix_delivery_attempts_provider)."""
    query = (
        select(col(DeliveryAttempt.served_by), col(DeliveryAttempt.outcome), func.count())
        .where(
            col(DeliveryAttempt.client_id) == client_id,
            col(DeliveryAttempt.attempted_at) >= since,
            col(DeliveryAttempt.attempted_at) < until,
            col(DeliveryAttempt.served_by).is_not(None),
        )
        .group_by(col(DeliveryAttempt.served_by), col(DeliveryAttempt.outcome))
    )
    return [(str(r[0]), r[1], int(r[2])) for r in (await session.execute(query)).all()]


async def provider_event_counts(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[str, str, int]]:
    """(provider name, event kind, count) of the delivery events the client's providers
    reported in the period (ix_provider_events_client_received)."""
    query = (
        select(col(Provider.name), col(ProviderEventRecord.kind), func.count())
        .join(Provider, col(Provider.id) == col(ProviderEventRecord.provider_id))
        .where(
            col(ProviderEventRecord.client_id) == client_id,
            col(ProviderEventRecord.received_at) >= since,
            col(ProviderEventRecord.received_at) < until,
        )
        .group_by(col(Provider.name), col(ProviderEventRecord.kind))
    )
    return [(r[0], r[1], int(r[2])) for r in (await session.execute(query)).all()]


async def provider_channels(session: AsyncSession, client_id: str) -> dict[str, str]:
    """The channel of each of the client's providers, by name."""
    query = select(col(Provider.name), col(Provider.channel)).where(
        col(Provider.client_id) == client_id
    )
    return {r[0]: r[1] for r in (await session.execute(query)).all()}


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


async def rolled_until(session: AsyncSession) -> datetime | None:
    """Every hour before this is in the rollups (None: the job never ran)."""
    state = await session.get(RollupState, rollup.STATE)
    return None if state is None else state.rolled_until


async def rolled_deliveries(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[str, str, int]]:
    """(channel, status, count) from the hourly rollups of the hours in [since, until)."""
    query = (
        select(
            col(DeliveryRollup.channel),
            col(DeliveryRollup.status),
            func.sum(col(DeliveryRollup.count)),
        )
        .where(
            col(DeliveryRollup.client_id) == client_id,
            col(DeliveryRollup.hour) >= since,
            col(DeliveryRollup.hour) < until,
        )
        .group_by(col(DeliveryRollup.channel), col(DeliveryRollup.status))
    )
    return [(r[0], r[1], int(r[2])) for r in (await session.execute(query)).all()]


async def rolled_latency(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[int, int]]:
    """(bucket, count) from the latency histograms of the hours in [since, until)."""
    query = (
        select(col(LatencyRollup.bucket), func.sum(col(LatencyRollup.count)))
        .where(
            col(LatencyRollup.client_id) == client_id,
            col(LatencyRollup.hour) >= since,
            col(LatencyRollup.hour) < until,
        )
        .group_by(col(LatencyRollup.bucket))
    )
    return [(int(r[0]), int(r[1])) for r in (await session.execute(query)).all()]


async def live_latency(
    session: AsyncSession, client_id: str, since: datetime, until: datetime
) -> list[tuple[int, int]]:
    """(bucket, count) of the delivered deliveries created in [since, until), from the rows."""
    dialect = session.bind.dialect.name if session.bind is not None else ""
    bucket = rollup.bucket_of(dialect)
    query = (
        select(bucket, func.count())
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.created_at) >= since,
            col(Delivery.created_at) < until,
            col(Delivery.status) == DELIVERED,
            col(Delivery.delivered_at).is_not(None),
        )
        .group_by(text("1"))
    )
    return [(int(r[0]), int(r[1])) for r in (await session.execute(query)).all()]


def histogram_percentile(buckets: dict[int, int], fraction: float) -> float | None:
    """percentile_cont over a latency histogram, in seconds: the values of a bucket are
    taken as spread evenly over it, so the result is within the bucket precision."""
    total = sum(buckets.values())
    if total == 0:
        return None
    position = fraction * (total - 1)
    low = int(position)
    high = min(low + 1, total - 1)
    value_low, value_high = _rank_value(buckets, low), _rank_value(buckets, high)
    return (value_low + (value_high - value_low) * (position - low)) / 1000


def _rank_value(buckets: dict[int, int], rank: int) -> float:
    seen = 0
    for bucket in sorted(buckets):
        count = buckets[bucket]
        if rank < seen + count:
            lower, upper = rollup.bucket_bounds_ms(bucket)
            return lower + (upper - lower) * (rank - seen + 0.5) / count
        seen += count
    raise ValueError("rank beyond the histogram")
