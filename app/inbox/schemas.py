"""Request and response shapes of the inbox and preferences (API.md §6b)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.inbox.repository import InboxEntry

MAX_PREFERENCE_EVENTS = 200
ChannelName = Annotated[str, Field(min_length=1, max_length=16)]
EventName = Annotated[str, Field(min_length=1, max_length=200)]


class InboxItemOut(BaseModel):
    """One notification in a user's inbox; a NULL time means not (yet) read/seen/archived."""

    id: str
    notification_id: str
    event: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    seen_at: datetime | None
    archived_at: datetime | None

    @classmethod
    def of(cls, entry: InboxEntry) -> InboxItemOut:
        """From the row and the data it shows (its notification's)."""
        item = entry.item
        return cls(
            id=item.id,
            notification_id=item.notification_id,
            event=item.event,
            data=entry.data,
            created_at=item.created_at,
            read_at=item.read_at,
            seen_at=item.seen_at,
            archived_at=item.archived_at,
        )


class InboxPage(BaseModel):
    """A page of inbox items, newest first."""

    data: list[InboxItemOut]
    has_more: bool
    next_cursor: str | None


class InboxCount(BaseModel):
    """The user's unarchived items: unread, unseen, all (also the `notification.count` event)."""

    unread: int
    unseen: int
    total: int


class InboxBulkResult(InboxCount):
    """A bulk change (read-all, archive-read): how many items changed, and the new counts."""

    updated: int


class Preferences(BaseModel):
    """`{"channels": {"email": false}, "events": {"order.shipped": {"email": true}}}`.

    A channel not named is on. An event's entry overrides the channel's for notifications of
    that event type (`metadata.category`, else `websocket.event`). Only channels that reach a
    user may be named (not `webhook`: endpoints are the tenant's own).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"channels": {"email": False}, "events": {"order.shipped": {"email": True}}}
            ]
        },
    )

    channels: dict[ChannelName, StrictBool] = Field(default_factory=dict, max_length=16)
    events: dict[EventName, dict[ChannelName, StrictBool]] = Field(
        default_factory=dict, max_length=MAX_PREFERENCE_EVENTS
    )

    def named_channels(self) -> set[str]:
        """Every channel the document names."""
        names = set(self.channels)
        for by_channel in self.events.values():
            names.update(by_channel)
        return names
