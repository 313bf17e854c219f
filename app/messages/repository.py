"""Queries on messages, always scoped by client id and room."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.db import Database
from app.core.native_sql import NativeQuery, driver_query, session_query
from app.core.types import sqlite_time
from app.messages.models import Message


async def get(
    session: AsyncSession, client_id: str, room_id: str, message_id: str
) -> Message | None:
    """One message of a room."""
    query = select(Message).where(
        col(Message.client_id) == client_id,
        col(Message.room_id) == room_id,
        col(Message.id) == message_id,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def by_client_message_id(
    session: AsyncSession, client_id: str, room_id: str, client_message_id: str
) -> Message | None:
    """The room's message sent with this idempotency id."""
    query = select(Message).where(
        col(Message.client_id) == client_id,
        col(Message.room_id) == room_id,
        col(Message.client_message_id) == client_message_id,
    )
    return (await session.execute(query)).scalar_one_or_none()


def add(session: AsyncSession, message: Message) -> None:
    """Stage a new message."""
    session.add(message)


async def page(
    session: AsyncSession,
    client_id: str,
    room_id: str,
    *,
    limit: int,
    before_seq: int | None,
    after_seq: int | None,
) -> Sequence[Message]:
    """`limit + 1` messages by seq: ascending after `after_seq`, else newest first.

    The (room_id, seq) unique index serves both directions; no offsets are scanned.
    """
    query = select(Message).where(
        col(Message.client_id) == client_id, col(Message.room_id) == room_id
    )
    if before_seq is not None:
        query = query.where(col(Message.seq) < before_seq)
    if after_seq is not None:
        query = query.where(col(Message.seq) > after_seq).order_by(col(Message.seq))
    else:
        query = query.order_by(col(Message.seq).desc())
    return (await session.execute(query.limit(limit + 1))).scalars().all()


@dataclass(frozen=True, slots=True)
class Appended:
    """What `append` numbered: the message's seq, and whether the room was inactive."""

    seq: int
    reactivated: bool


async def append_alone(
    db: Database, row: dict[str, Any], *, member_id: str | None, reader_id: str | None
) -> Appended | None:
    """`append` as a transaction of its own, on a pooled driver connection: the hot path of
    every send without a `client_message_id`. On PostgreSQL one statement in autocommit
    (atomic all the same: no BEGIN, no COMMIT, one round trip); on SQLite four statements
    between `BEGIN IMMEDIATE` and `COMMIT` on the process's one write connection."""
    params = _params(row, member_id, reader_id)
    async with db.driver_connection() as driver:
        query = driver_query(driver)
        if db.dialect_name == "postgresql":
            return await _append_pg(query, params)
        await driver.execute("BEGIN IMMEDIATE")
        try:
            appended = await _append_sqlite(query, params)
        except BaseException:
            await driver.rollback()
            raise
        await driver.commit() if appended is not None else await driver.rollback()
        return appended


async def append(
    session: AsyncSession, row: dict[str, Any], *, member_id: str | None, reader_id: str | None
) -> Appended | None:
    """Store `row` (a messages row without `seq`) as the room's next message, in the
    session's transaction: lock the room, take its next seq (marking it active at
    `row["created_at"]`), insert, and move `reader_id`'s read marker to the new seq.

    None, with nothing written, when the client has no such room or `member_id` (when
    given) is not one of its members. The statements go to the driver as written (no unit
    of work, no compiling): one statement on PostgreSQL, and on SQLite (whose writers
    already hold the database's write lock) four short ones.
    """
    params = _params(row, member_id, reader_id)
    if session.get_bind().dialect.name == "postgresql":
        return await _append_pg(session_query(session), params)
    return await _append_sqlite(session_query(session), params)


def _params(row: dict[str, Any], member_id: str | None, reader_id: str | None) -> dict[str, Any]:
    return {**row, "member_id": member_id, "reader_id": reader_id}


# `locked` takes the room's row lock first and, under READ COMMITTED, reads the row's latest
# committed version (so `was_active` is current); `taken` then updates that very row, and the
# INSERT and the read marker use its seq. All four run as one statement. (asyncpg's
# parameter style: the connection prepares it once and keeps it in its statement cache.)
_APPEND_PG_SQL = """
WITH locked AS (
    SELECT r.id, r.is_active FROM rooms AS r
    WHERE r.client_id = $1 AND r.id = $2 {member_check}
    FOR UPDATE OF r
), taken AS (
    UPDATE rooms SET last_seq = rooms.last_seq + 1, last_activity_at = $3::timestamptz,
        is_active = true, deactivated_at = NULL
    FROM locked WHERE rooms.id = locked.id
    RETURNING rooms.last_seq AS seq, locked.is_active AS was_active
), inserted AS (
    INSERT INTO messages (id, client_id, room_id, seq, sender_id, content, content_type,
        metadata, client_message_id, created_at)
    SELECT $4, $1, $2, taken.seq, $5::varchar, $6, $7, $8::json, $9::varchar, $3::timestamptz
    FROM taken
), marked AS (
    UPDATE room_members SET read_seq = taken.seq FROM taken
    WHERE room_members.client_id = $1 AND room_members.room_id = $2
        AND room_members.user_id = $10::varchar AND room_members.read_seq < taken.seq
)
SELECT seq, was_active FROM taken
"""
_APPEND_PG = _APPEND_PG_SQL.strip().format(member_check="")
_APPEND_PG_MEMBER = _APPEND_PG_SQL.strip().format(
    member_check="AND EXISTS (SELECT 1 FROM room_members AS m WHERE m.client_id = $1 "
    "AND m.room_id = r.id AND m.user_id = $11::varchar)"
)


async def _append_pg(query: NativeQuery, p: dict[str, Any]) -> Appended | None:
    args = [
        p["client_id"],
        p["room_id"],
        p["created_at"],
        p["id"],
        p["sender_id"],
        p["content"],
        p["content_type"],
        # SQLAlchemy's asyncpg dialect gives json parameters to the driver as JSON text.
        _json(p["metadata"]),
        p["client_message_id"],
        p["reader_id"],
    ]
    if p["member_id"] is not None:
        rows = await query(_APPEND_PG_MEMBER, [*args, p["member_id"]])
    else:
        rows = await query(_APPEND_PG, args)
    return Appended(int(rows[0][0]), not rows[0][1]) if rows else None


_SQLITE_ROOM = "SELECT is_active FROM rooms WHERE client_id = ? AND id = ?"
_SQLITE_MEMBER = (
    " AND EXISTS (SELECT 1 FROM room_members WHERE client_id = ? AND room_id = ? AND user_id = ?)"
)
_SQLITE_TAKE = (
    "UPDATE rooms SET last_seq = last_seq + 1, last_activity_at = ?, is_active = 1, "
    "deactivated_at = NULL WHERE client_id = ? AND id = ? RETURNING last_seq"
)
_SQLITE_INSERT = (
    "INSERT INTO messages (id, client_id, room_id, seq, sender_id, content, content_type, "
    "metadata, client_message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_MARK = (
    "UPDATE room_members SET read_seq = ? "
    "WHERE client_id = ? AND room_id = ? AND user_id = ? AND read_seq < ?"
)


async def _append_sqlite(query: NativeQuery, p: dict[str, Any]) -> Appended | None:
    # The transaction holds SQLite's write lock (BEGIN IMMEDIATE): no other writer runs
    # until the commit, so reading the room and then updating it is race-free.
    client_id, room_id, member_id = p["client_id"], p["room_id"], p["member_id"]
    if member_id is None:
        found = await query(_SQLITE_ROOM, (client_id, room_id))
    else:
        found = await query(
            _SQLITE_ROOM + _SQLITE_MEMBER, (client_id, room_id, client_id, room_id, member_id)
        )
    if not found:
        return None
    was_active = bool(found[0][0])
    created_at = sqlite_time(p["created_at"])
    taken = await query(_SQLITE_TAKE, (created_at, client_id, room_id))
    seq = int(taken[0][0])
    await query(
        _SQLITE_INSERT,
        (
            p["id"],
            client_id,
            room_id,
            seq,
            p["sender_id"],
            p["content"],
            p["content_type"],
            _json(p["metadata"]),
            p["client_message_id"],
            created_at,
        ),
    )
    if p["reader_id"] is not None:
        await query(_SQLITE_MARK, (seq, client_id, room_id, p["reader_id"], seq))
    return Appended(seq, not was_active)


def _json(value: Any) -> str:
    # What SQLAlchemy's JSON type stores (its default serializer), so either path writes
    # the same text.
    return json.dumps(value)
