"""Messages, numbered 1, 2, 3 … per room by the room's counter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class Message(SQLModel, table=True):
    """One message; soft-deleted messages keep their seq and lose their content."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("room_id", "seq"),
        UniqueConstraint("room_id", "client_message_id"),
        # Analytics: a client's messages in a period, counted on the index alone.
        Index("ix_messages_client_created", "client_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(max_length=26)
    room_id: str = Field(foreign_key="rooms.id", ondelete="CASCADE", max_length=26)
    seq: int
    sender_id: str | None = Field(default=None, max_length=26)
    content: str = Field(sa_column=Column(Text, nullable=False))
    content_type: str = Field(default="text/plain", max_length=100)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    client_message_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    edited_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
