"""Rooms, their members, and each member's read marker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class Room(SQLModel, table=True):
    """A conversation of one client; `last_seq` numbers its messages without gaps."""

    __tablename__ = "rooms"
    __table_args__ = (
        # The sweep's path: active rooms of one type, oldest activity first.
        Index("ix_rooms_sweep", "is_active", "type", "last_activity_at"),
        Index("ix_rooms_client_id_id", "client_id", "id"),
        # Analytics: a client's rooms by type and state, counted on the index alone.
        Index("ix_rooms_client_type_active", "client_id", "type", "is_active"),
        # One direct room per pair of users within a client.
        UniqueConstraint("client_id", "direct_key"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    name: str | None = Field(default=None, max_length=200)
    type: str = Field(max_length=16)
    is_active: bool = True
    last_activity_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    deactivated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seq: int = 0
    direct_key: str | None = Field(default=None, max_length=60)
    created_by: str | None = Field(default=None, max_length=26)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class RoomMember(SQLModel, table=True):
    """A user in a room, with its role and how far it has read."""

    __tablename__ = "room_members"
    __table_args__ = (Index("ix_room_members_client_user", "client_id", "user_id"),)

    room_id: str = Field(
        foreign_key="rooms.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    user_id: str = Field(
        foreign_key="users.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    client_id: str = Field(max_length=26)
    role: str = Field(default="member", max_length=16)
    read_seq: int = 0
    joined_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
