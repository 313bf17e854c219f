"""The tenant's event catalog: the webhook event types it sends, with payload schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class EventType(SQLModel, table=True):
    """One event type of a tenant; archived types no longer accept sends."""

    __tablename__ = "event_types"
    __table_args__ = (UniqueConstraint("client_id", "name", name="uq_event_types_client_name"),)

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    payload_schema: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    archived: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
