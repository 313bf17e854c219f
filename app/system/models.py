"""Rows that prove the background machinery runs: beat heartbeats."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class Heartbeat(SQLModel, table=True):
    """The last time a periodic source (e.g. beat) proved it was alive."""

    __tablename__ = "heartbeats"

    name: str = Field(primary_key=True, max_length=64)
    beat_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    count: int = 0
