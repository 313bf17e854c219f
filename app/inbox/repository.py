"""Queries on inbox items and notification preferences; always scoped by client id (and, for
a user's own inbox, by user id: another user's item is simply not found).

An item's content is its notification's websocket `data` (stored once, app/inbox/models.py):
`get` and `list_page` read it in the same statement, joined by primary key — one query per
page, not one per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    Table,
    and_,
    column,
    delete,
    func,
    select,
    table,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.channels.names import IN_APP
from app.core.native_sql import insert_rows, session_query
from app.core.upsert import dialect_insert
from app.inbox.models import (
    ACTIVE_WHERE,
    UNREAD_WHERE,
    UNSEEN_WHERE,
    InboxItem,
    NotificationPreference,
)

# The relay's notifications table, as far as an item reads it (its content): a table clause
# rather than the relay's model, so the inbox does not import the relay that imports it.
_NOTIFICATIONS = table("notifications", column("id"), column("client_id"), column("content", JSON))

# Rows per INSERT of a fan-out (the relay's chunk size: under asyncpg's parameter limit).
INSERT_CHUNK = 1000
# User ids per IN (...) when reading the recipients' preferences.
READ_CHUNK = 1000
_ITEMS: Table = InboxItem.__table__  # type: ignore[attr-defined]
# What an item shows: one JSON path into its notification's content (`content #>
# '{websocket,data}'` on PostgreSQL, `json_extract(content, '$."websocket"."data"')` on
# SQLite), decoded as JSON on both.
_DATA = _NOTIFICATIONS.c.content[(IN_APP, "data")]


@dataclass(frozen=True, slots=True)
class Counts:
    """A user's inbox counts (unarchived, visible items)."""

    unread: int
    unseen: int
    total: int

    def as_dict(self) -> dict[str, int]:
        """The `notification.count` event's data."""
        return {"unread": self.unread, "unseen": self.unseen, "total": self.total}


@dataclass(frozen=True, slots=True)
class InboxContent:
    """A notification's inbox items: their `event` and from when they are visible (their
    `data` is the notification's own websocket data, not copied)."""

    event: str
    visible_at: datetime


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """An item as read: the row and the data it shows (its notification's)."""

    item: InboxItem
    data: dict[str, Any]

    @property
    def id(self) -> str:
        """The item's id (the page cursor)."""
        return self.item.id


async def add_items(
    session: AsyncSession,
    client_id: str,
    notification_id: str,
    items: Sequence[tuple[str, str]],
    *,
    event: str,
    visible_at: datetime,
) -> None:
    """Insert one item per (delivery id, user id), in chunks (Core executemany); the
    notification `notification_id` holds their content."""
    for start in range(0, len(items), INSERT_CHUNK):
        rows = [
            {
                "id": item_id,
                "client_id": client_id,
                "user_id": user_id,
                "notification_id": notification_id,
                "event": event,
                "created_at": visible_at,
                "read_at": None,
                "seen_at": None,
                "archived_at": None,
            }
            for item_id, user_id in items[start : start + INSERT_CHUNK]
        ]
        await insert_rows(session, _ITEMS, rows)


async def remove_items(session: AsyncSession, client_id: str, item_ids: Sequence[str]) -> set[str]:
    """Delete the items with these ids (their deliveries were cancelled); the users affected."""
    users: set[str] = set()
    for start in range(0, len(item_ids), READ_CHUNK):
        result = await session.execute(
            delete(InboxItem)
            .where(
                col(InboxItem.client_id) == client_id,
                col(InboxItem.id).in_(item_ids[start : start + READ_CHUNK]),
            )
            .returning(col(InboxItem.user_id))
            .execution_options(synchronize_session=False)
        )
        users.update(result.scalars().all())
    return users


def _mine(client_id: str, user_id: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        col(InboxItem.client_id) == client_id,
        col(InboxItem.user_id) == user_id,
        col(InboxItem.created_at) <= now,
    ]


def _with_content() -> Select[tuple[InboxItem, Any]]:
    # Inner join on the notification's primary key (and its client, belt and braces).
    return select(InboxItem, _DATA).join(
        _NOTIFICATIONS,
        and_(
            _NOTIFICATIONS.c.id == col(InboxItem.notification_id),
            _NOTIFICATIONS.c.client_id == col(InboxItem.client_id),
        ),
    )


def _entries(rows: Sequence[Any]) -> list[InboxEntry]:
    # A notification without websocket data shows `{}`, as an item without data did.
    return [InboxEntry(item, data if data is not None else {}) for item, data in rows]


async def get(
    session: AsyncSession, client_id: str, user_id: str, item_id: str, *, now: datetime
) -> InboxEntry | None:
    """One visible item of the user, with its content."""
    query = _with_content().where(col(InboxItem.id) == item_id, *_mine(client_id, user_id, now))
    found = _entries((await session.execute(query)).all())
    return found[0] if found else None


async def list_page(
    session: AsyncSession,
    client_id: str,
    user_id: str,
    *,
    now: datetime,
    limit: int,
    after: str | None = None,
    read: bool | None = None,
    seen: bool | None = None,
    archived: bool | None = None,
    event: str | None = None,
) -> list[InboxEntry]:
    """`limit + 1` visible items of the user with their content, newest first, older than the
    cursor id (one statement)."""
    query = _with_content().where(*_mine(client_id, user_id, now))
    if after:
        query = query.where(col(InboxItem.id) < after)
    for stamp, wanted in (
        (InboxItem.read_at, read),
        (InboxItem.seen_at, seen),
        (InboxItem.archived_at, archived),
    ):
        if wanted is not None:
            query = query.where(col(stamp).is_not(None) if wanted else col(stamp).is_(None))
    if event is not None:
        query = query.where(col(InboxItem.event) == event)
    query = query.order_by(col(InboxItem.id).desc()).limit(limit + 1)
    return _entries((await session.execute(query)).all())


async def counts(session: AsyncSession, client_id: str, user_id: str, *, now: datetime) -> Counts:
    """The user's counts in one round trip: three COUNTs, each answered from its partial
    index (the predicates are the indexes' own, so both databases pick them)."""

    def count(where: str) -> Any:
        return (
            select(func.count())
            .select_from(_ITEMS)
            .where(*_mine(client_id, user_id, now), text(where))
            .scalar_subquery()
        )

    row = (
        await session.execute(select(count(UNREAD_WHERE), count(UNSEEN_WHERE), count(ACTIVE_WHERE)))
    ).one()
    return Counts(unread=int(row[0]), unseen=int(row[1]), total=int(row[2]))


# Per action: the state an item must not already be in, and the values that change it.
def _action(action: str, now: datetime) -> tuple[ColumnElement[bool], dict[str, Any]]:
    read_at, seen_at, archived_at = (
        col(InboxItem.read_at),
        col(InboxItem.seen_at),
        col(InboxItem.archived_at),
    )
    if action == "read":
        # Reading an item shows it: it is seen too (the first time only).
        return read_at.is_(None), {"read_at": now, "seen_at": func.coalesce(seen_at, now)}
    if action == "unread":
        return read_at.is_not(None), {"read_at": None}
    if action == "seen":
        return seen_at.is_(None), {"seen_at": now}
    if action == "archive":
        return archived_at.is_(None), {"archived_at": now}
    if action == "unarchive":
        return archived_at.is_not(None), {"archived_at": None}
    raise ValueError(f"unknown inbox action {action!r}")


ACTIONS = ("read", "unread", "seen", "archive", "unarchive")


async def apply(
    session: AsyncSession, client_id: str, user_id: str, item_id: str, action: str, *, now: datetime
) -> bool:
    """Apply `action` to one visible item of the user; whether its state changed."""
    unless, values = _action(action, now)
    result = await session.execute(
        update(InboxItem)
        .where(col(InboxItem.id) == item_id, *_mine(client_id, user_id, now), unless)
        .values(**values)
        .returning(col(InboxItem.id))
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def read_all(session: AsyncSession, client_id: str, user_id: str, *, now: datetime) -> int:
    """Mark every visible unread item of the user read (and seen); how many changed."""
    unless, values = _action("read", now)
    result = await session.execute(
        update(InboxItem)
        .where(*_mine(client_id, user_id, now), unless)
        .values(**values)
        .returning(col(InboxItem.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


async def archive_read(
    session: AsyncSession, client_id: str, user_id: str, *, now: datetime
) -> int:
    """Archive every visible read, unarchived item of the user; how many changed."""
    result = await session.execute(
        update(InboxItem)
        .where(
            *_mine(client_id, user_id, now),
            col(InboxItem.read_at).is_not(None),
            col(InboxItem.archived_at).is_(None),
        )
        .values(archived_at=now)
        .returning(col(InboxItem.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


async def purge(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` items created before `before` (all clients: retention); how many."""
    doomed = (
        select(col(InboxItem.id))
        .where(col(InboxItem.created_at) < before)
        .order_by(col(InboxItem.created_at))
        .limit(limit)
    )
    result = await session.execute(
        delete(InboxItem)
        .where(col(InboxItem.id).in_(doomed))
        .returning(col(InboxItem.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


async def get_preferences(
    session: AsyncSession, client_id: str, user_id: str
) -> dict[str, Any] | None:
    """The user's stored preference document, or None (everything on)."""
    query = select(col(NotificationPreference.preferences)).where(
        col(NotificationPreference.client_id) == client_id,
        col(NotificationPreference.user_id) == user_id,
    )
    found = (await session.execute(query)).scalar_one_or_none()
    return dict(found) if found is not None else None


_PREFERENCES_PG = (
    "SELECT user_id, preferences FROM notification_preferences "
    "WHERE client_id = $1 AND user_id = ANY($2::varchar[])"
)


def _json(value: Any) -> Any:
    # Driver SQL skips SQLAlchemy's JSON result processing: the driver answers text.
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


async def preferences_of(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The stored documents of those users that have one (bulk, by primary key)."""
    out: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(user_ids))
    if session.get_bind().dialect.name == "postgresql":
        # Driver SQL with an array: one statement, no Core compilation nor ORM results on
        # the send's hot path. The driver gives the JSON as text.
        rows = await session_query(session)(_PREFERENCES_PG, [client_id, unique])
        return {user_id: dict(_json(doc)) for user_id, doc in rows}
    for start in range(0, len(unique), READ_CHUNK):
        query = select(
            col(NotificationPreference.user_id), col(NotificationPreference.preferences)
        ).where(
            col(NotificationPreference.client_id) == client_id,
            col(NotificationPreference.user_id).in_(unique[start : start + READ_CHUNK]),
        )
        for user_id, doc in (await session.execute(query)).all():
            out[user_id] = dict(doc)
    return out


async def put_preferences(
    session: AsyncSession, client_id: str, user_id: str, doc: dict[str, Any], *, now: datetime
) -> None:
    """Store (replace) the user's preference document."""
    stmt = dialect_insert(session, NotificationPreference).values(
        client_id=client_id, user_id=user_id, preferences=doc, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["client_id", "user_id"],
        set_={"preferences": stmt.excluded.preferences, "updated_at": stmt.excluded.updated_at},
    )
    await session.execute(stmt)
