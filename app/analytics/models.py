"""The hourly rollups behind GET /analytics/summary (see `app.analytics.rollup`)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.core.types import UTCDateTime


class DeliveryRollup(SQLModel, table=True):
    """How many of a client's deliveries created in `hour` have (channel, status)."""

    __tablename__ = "delivery_rollups"

    client_id: str = Field(
        primary_key=True, foreign_key="clients.id", ondelete="CASCADE", max_length=26
    )
    hour: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    channel: str = Field(primary_key=True, max_length=16)
    status: str = Field(primary_key=True, max_length=16)
    count: int


class LatencyRollup(SQLModel, table=True):
    """How many of a client's delivered deliveries created in `hour` on `channel` took a
    latency (delivered_at - created_at) in histogram bucket `bucket` (see
    `app.analytics.rollup.bucket_bounds_ms`)."""

    __tablename__ = "delivery_latency_rollups"

    client_id: str = Field(
        primary_key=True, foreign_key="clients.id", ondelete="CASCADE", max_length=26
    )
    hour: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    channel: str = Field(primary_key=True, max_length=16)
    bucket: int = Field(primary_key=True)
    count: int


class RollupState(SQLModel, table=True):
    """How far the rollup job got: every hour before `rolled_until` is in the rollups as of
    the run at `checked_at` (deliveries updated since are re-rolled by the next run)."""

    __tablename__ = "rollup_state"

    name: str = Field(primary_key=True, max_length=32)
    rolled_until: datetime = Field(sa_type=UTCDateTime)
    checked_at: datetime = Field(sa_type=UTCDateTime)
