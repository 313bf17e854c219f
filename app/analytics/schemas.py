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


class ProviderSummary(BaseModel):
    """One provider's attempts in the period and the delivery events it reported."""

    channel: str | None = Field(
        description="The provider's channel; null when it has been deleted since."
    )
    attempts: int = Field(description="Attempts the provider answered (fail-overs included).")
    by_outcome: dict[str, int] = Field(description="Attempts by outcome: delivered, retry, failed.")
    delivery_rate: float | None = Field(
        description="delivered / attempts (accepted by the provider), null without attempts."
    )
    events: dict[str, int] = Field(
        default_factory=dict,
        description="Delivery events it reported: delivered, bounced, complained, failed.",
    )


class AnalyticsSummary(BaseModel):
    """A client's activity in `[since, until)`."""

    since: datetime
    until: datetime
    messages_sent: int
    rooms: dict[str, ActiveInactive]
    notifications: NotificationsSummary
    deliveries: DeliveriesSummary
    providers: dict[str, ProviderSummary] = Field(
        default_factory=dict,
        description=(
            "Per provider (by name): its attempts, delivery rate and reported events in the "
            "period; attempts are kept ATTEMPT_RETENTION_DAYS."
        ),
    )
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
