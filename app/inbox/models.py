"""The in-app inbox and notification preferences (API.md §6b).

An inbox item is one websocket-channel delivery seen from its recipient: it shares the
delivery's id (so the `notification` event, which knows the delivery, carries the item's
id without a lookup) and outlives the delivery's bookkeeping (parked expiry) for
INBOX_RETENTION_DAYS.

The content an item shows is its notification's websocket `data`, stored once in the
notification's row and joined on read: a copy per recipient made one 883 KB send to 100
users write 90 MB. The item keeps only its `event` name (at most 200 characters), which the
`?event=` filter compares. Notifications are never deleted apart from their client, which
takes the items with it, so the join always finds the content.

Counts (`unread`, `unseen`, `total`) are indexed COUNT queries on partial indexes, not a
counters table: the rows are the only truth (no drift when items are purged, cancelled or
cascade-deleted with their user), a fan-out send does not contend on per-user counter
rows, and a count reads only that user's index entries of that state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, text
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime

# The predicates of the partial count indexes; queries must repeat them verbatim to use them.
UNREAD_WHERE = "read_at IS NULL AND archived_at IS NULL"
UNSEEN_WHERE = "seen_at IS NULL AND archived_at IS NULL"
ACTIVE_WHERE = "archived_at IS NULL"


def _partial(name: str, where: str) -> Index:
    return Index(
        name,
        "client_id",
        "user_id",
        "created_at",
        postgresql_where=text(where),
        sqlite_where=text(where),
    )


class InboxItem(SQLModel, table=True):
    """One notification in one user's inbox.

    `created_at` is when the item became visible: the notification's `send_at` (a scheduled
    notification is not in the inbox before its time). `read_at`, `seen_at` and
    `archived_at` are the state; NULL means not (yet).
    """

    __tablename__ = "inbox_items"
    __table_args__ = (
        # A user's inbox, newest first (cursor = id).
        Index("ix_inbox_items_user", "client_id", "user_id", "id"),
        # The counts: each walks only the user's entries of that state.
        _partial("ix_inbox_items_unread", UNREAD_WHERE),
        _partial("ix_inbox_items_unseen", UNSEEN_WHERE),
        _partial("ix_inbox_items_active", ACTIVE_WHERE),
        # Retention purge, oldest first.
        Index("ix_inbox_items_created_at", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", max_length=26)
    notification_id: str = Field(max_length=26)
    event: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class NotificationPreference(SQLModel, table=True):
    """A user's channel preferences: `{"channels": {...}, "events": {...}}` (API.md §6b).

    One JSON document per user: it is read whole (bulk, by user id) by every send and
    written whole by PUT, so columns per channel would buy nothing.
    """

    __tablename__ = "notification_preferences"

    client_id: str = Field(
        foreign_key="clients.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    user_id: str = Field(
        foreign_key="users.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    preferences: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
