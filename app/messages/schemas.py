"""Request and response shapes of `/rooms/{id}/messages`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.bounds import Metadata
from app.messages.models import Message


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000: refused here (422) on both databases instead of
    # failing in the INSERT, which also checks the room, so an unknown room stays a 404
    # only for bodies that could be stored.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


StoredText = Annotated[str, AfterValidator(_no_nul)]


class MessageCreate(BaseModel):
    """`POST /rooms/{id}/messages` (and the `message.send` socket event)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "content": "Your order has shipped!",
                    "content_type": "text/plain",
                    "metadata": {"order_id": "A-1042"},
                    "client_message_id": "7d1f1c1e-2b57-4a8e-9b1e-1f0c0c7a1d2e",
                }
            ]
        },
    )

    # The byte limit (MAX_MESSAGE_BYTES) is checked by the service: it is configurable.
    content: StoredText = Field(min_length=1)
    content_type: StoredText = Field(default="text/plain", min_length=1, max_length=100)
    metadata: Metadata = Field(default_factory=dict)
    client_message_id: StoredText | None = Field(default=None, min_length=1, max_length=100)


class MessagePatch(BaseModel):
    """`PATCH /rooms/{id}/messages/{message_id}`."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(default=None, min_length=1)
    metadata: Metadata | None = None


class MessageOut(BaseModel):
    """A message as the API (and every real-time event) shows it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z6C3D4E5F6G7H8J9K0M1N",
                    "room_id": "01JD6Z5B2C3D4E5F6G7H8J9K0M",
                    "seq": 3,
                    "sender_id": "01JD6Z4A1B2C3D4E5F6G7H8J9K",
                    "content": "Where is my parcel?",
                    "content_type": "text/plain",
                    "metadata": {},
                    "client_message_id": "c-7f3a",
                    "created_at": "2026-12-01T09:30:00Z",
                    "edited_at": None,
                    "deleted_at": None,
                }
            ]
        }
    )

    id: str
    room_id: str
    seq: int
    sender_id: str | None
    content: str
    content_type: str
    metadata: dict[str, Any]
    client_message_id: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        """From the row."""
        return cls(
            id=message.id,
            room_id=message.room_id,
            seq=message.seq,
            sender_id=message.sender_id,
            content=message.content,
            content_type=message.content_type,
            metadata=message.metadata_,
            client_message_id=message.client_message_id,
            created_at=message.created_at,
            edited_at=message.edited_at,
            deleted_at=message.deleted_at,
        )

    @classmethod
    def of_row(cls, row: dict[str, Any], seq: int) -> MessageOut:
        """A message just stored from `row` (the messages columns; the API names the
        `metadata` column so too) with the seq it was given."""
        return cls(
            id=row["id"],
            room_id=row["room_id"],
            seq=seq,
            sender_id=row["sender_id"],
            content=row["content"],
            content_type=row["content_type"],
            metadata=row["metadata"],
            client_message_id=row["client_message_id"],
            created_at=row["created_at"],
            edited_at=None,
            deleted_at=None,
        )


class MessagePage(BaseModel):
    """Messages in the order asked for, and whether more lie beyond."""

    data: list[MessageOut]
    has_more: bool
