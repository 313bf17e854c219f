"""`GET /analytics/summary`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ActiveInactive(BaseModel):
    """Rooms of one type by state (now, not within the period)."""

    active: int = 0
    inactive: int = 0


class Latency(BaseModel):
    """Accepted → delivered, in seconds, over the period's delivered deliveries
    (percentiles interpolate linearly, like PostgreSQL's percentile_cont)."""

    count: int
    p50: float | None
    p95: float | None


class DeliveriesSummary(BaseModel):
    """The period's deliveries (by their creation time)."""

    total: int
    failed: int
    by_channel: dict[str, dict[str, int]]
    latency_seconds: Latency


class NotificationsSummary(BaseModel):
    """The period's notifications (by their creation time)."""

    total: int
    by_status: dict[str, int]


class AnalyticsSummary(BaseModel):
    """A client's activity in `[since, until)`."""

    since: datetime
    until: datetime
    messages_sent: int
    rooms: dict[str, ActiveInactive]
    notifications: NotificationsSummary
    deliveries: DeliveriesSummary
    live_connections: int
    approximate: list[str] = Field(
        default_factory=list,
        description=(
            "The fields that are approximate (dotted paths), empty when all are exact. "
            "Over hours the hourly rollup job has covered, latency percentiles come from "
            "a histogram of log-spaced buckets and are within ±10% of the exact value "
            "(±1 ms under 1 ms); counts are always exact."
        ),
    )
