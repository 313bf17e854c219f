"""Request and response shapes of `/rooms`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.bounds import Metadata, Seq
from app.rooms.models import Room
from app.tenants.schemas import RoomType


class RoomCreate(BaseModel):
    """`POST /rooms`; a user key is added to `member_ids` as the owner."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Order A-1042",
                    "type": "support",
                    "member_ids": ["01JD6Z3Q8W9X0Y1Z2A3B4C5D6E"],
                    "metadata": {"order_id": "A-1042"},
                }
            ]
        },
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: RoomType = RoomType.group
    member_ids: list[str] = Field(default_factory=list, max_length=10_000)
    metadata: Metadata = Field(default_factory=dict)


class RoomPatch(BaseModel):
    """`PATCH /rooms/{id}`."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: Metadata | None = None


class MembersAdd(BaseModel):
    """`POST /rooms/{id}/members`."""

    model_config = ConfigDict(extra="forbid")

    user_ids: list[str] = Field(min_length=1, max_length=1000)


class ReadMarker(BaseModel):
    """`POST /rooms/{id}/read`."""

    model_config = ConfigDict(extra="forbid")

    seq: Seq


class RoomOut(BaseModel):
    """A room as the API shows it."""

    id: str
    name: str | None
    type: RoomType
    is_active: bool
    last_activity_at: datetime
    deactivated_at: datetime | None
    member_ids: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    last_seq: int
    unread_count: int | None = None

    @classmethod
    def of(cls, room: Room, member_ids: list[str], unread: int | None = None) -> RoomOut:
        """From the row and its member ids."""
        return cls(
            id=room.id,
            name=room.name,
            type=RoomType(room.type),
            is_active=room.is_active,
            last_activity_at=room.last_activity_at,
            deactivated_at=room.deactivated_at,
            member_ids=member_ids,
            metadata=room.metadata_,
            created_at=room.created_at,
            last_seq=room.last_seq,
            unread_count=unread,
        )


class RoomPage(BaseModel):
    """A page of rooms."""

    data: list[RoomOut]
    has_more: bool
    next_cursor: str | None


class ReadOut(BaseModel):
    """Where the caller's read marker stands."""

    room_id: str
    user_id: str
    seq: int
