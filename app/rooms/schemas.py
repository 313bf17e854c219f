"""Request and response shapes of `/rooms`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.bounds import Metadata, Seq
from app.rooms.models import Room, RoomMember
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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z5B2C3D4E5F6G7H8J9K0M",
                    "name": "Order 1042",
                    "type": "support",
                    "is_active": True,
                    "last_activity_at": "2026-12-01T09:30:00Z",
                    "deactivated_at": None,
                    "member_ids": ["01JD6Z4A1B2C3D4E5F6G7H8J9K"],
                    "member_count": 1,
                    "metadata": {"order_id": "1042"},
                    "created_at": "2026-12-01T09:30:00Z",
                    "last_seq": 3,
                    "unread_count": None,
                }
            ]
        }
    )

    id: str
    name: str | None
    type: RoomType
    is_active: bool
    last_activity_at: datetime
    deactivated_at: datetime | None
    # Null once the room has more than ROOM_MEMBER_IDS_MAX members: page those with
    # `GET /rooms/{id}/members` instead of carrying up to 100,000 ids in every payload.
    member_ids: list[str] | None
    member_count: int
    metadata: dict[str, Any]
    created_at: datetime
    last_seq: int
    unread_count: int | None = None

    @classmethod
    def of(
        cls,
        room: Room,
        member_ids: list[str] | None,
        member_count: int,
        unread: int | None = None,
    ) -> RoomOut:
        """From the row, its member count and its member ids (None for a large room)."""
        return cls(
            id=room.id,
            name=room.name,
            type=RoomType(room.type),
            is_active=room.is_active,
            last_activity_at=room.last_activity_at,
            deactivated_at=room.deactivated_at,
            member_ids=member_ids,
            member_count=member_count,
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


class MemberOut(BaseModel):
    """One member of a room."""

    user_id: str
    role: str
    joined_at: datetime
    read_seq: int

    @classmethod
    def of(cls, member: RoomMember) -> MemberOut:
        """From the membership row."""
        return cls(
            user_id=member.user_id,
            role=member.role,
            joined_at=member.joined_at,
            read_seq=member.read_seq,
        )


class MemberPage(BaseModel):
    """A page of a room's members, by user id."""

    data: list[MemberOut]
    has_more: bool
    next_cursor: str | None


class ReadOut(BaseModel):
    """Where the caller's read marker stands."""

    room_id: str
    user_id: str
    seq: int
