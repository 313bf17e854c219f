"""A user of a client, known to the client by its own `external_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class User(SQLModel, table=True):
    """An end user: sends messages, joins rooms, receives notifications."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("client_id", "external_id"),)

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26, index=True)
    external_id: str = Field(max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    # E.164 (`+14155550100`), validated by the API; the `sms` channel delivers to it.
    phone: str | None = Field(default=None, max_length=20)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
