"""Queries on messages, always scoped by client id and room."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, String, bindparam, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.core.types import UTCDateTime
from app.messages.models import Message
from app.rooms.models import Room, RoomMember

_messages = Message.__table__  # type: ignore[attr-defined]
_rooms = Room.__table__  # type: ignore[attr-defined]
_members = RoomMember.__table__  # type: ignore[attr-defined]


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


async def append(
    session: AsyncSession,
    row: dict[str, Any],
    *,
    member_id: str | None,
    reader_id: str | None,
    alone: bool = False,
) -> Appended | None:
    """Store `row` (a messages row without `seq`) as the room's next message, in the
    session's transaction: lock the room, take its next seq (marking it active at
    `row["created_at"]`), insert, and move `reader_id`'s read marker to the new seq.

    None, with nothing written, when the client has no such room or `member_id` (when
    given) is not one of its members. The hot path of every send, so it runs as SQLAlchemy
    Core on the session's connection (no unit of work): one statement on PostgreSQL, and
    on SQLite (whose writers already hold the database's write lock) four short ones.

    `alone`: this is the session's first and only statement before its commit. On
    PostgreSQL the one statement then runs as its own transaction (atomic all the same),
    without the BEGIN and COMMIT round trips; the session's commit has nothing left to do.
    """
    params = {**row, "member_id": member_id, "reader_id": reader_id}
    if session.get_bind().dialect.name == "postgresql":
        options = _AUTOCOMMIT if alone else {}
        conn = await session.connection(execution_options=options)
        sql = _APPEND_PG_MEMBER if member_id is not None else _APPEND_PG
        found = (await conn.execute(sql, params)).first()
        return None if found is None else Appended(int(found[0]), not found[1])
    return await _append_sqlite(await session.connection(), params)


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def _append_pg(member_check: str) -> Any:
    # `locked` takes the room's row lock first and, under READ COMMITTED, reads the row's
    # latest committed version (so `was_active` is current); `taken` then updates that very
    # row, and the INSERT and the read marker use its seq. All four run as one statement.
    sql = f"""
    WITH locked AS (
        SELECT r.id, r.is_active FROM rooms AS r
        WHERE r.client_id = :client_id AND r.id = :room_id {member_check}
        FOR UPDATE OF r
    ), taken AS (
        UPDATE rooms SET last_seq = rooms.last_seq + 1, last_activity_at = :created_at,
            is_active = true, deactivated_at = NULL
        FROM locked WHERE rooms.id = locked.id
        RETURNING rooms.last_seq AS seq, locked.is_active AS was_active
    ), inserted AS (
        INSERT INTO messages (id, client_id, room_id, seq, sender_id, content, content_type,
            metadata, client_message_id, created_at)
        SELECT :id, :client_id, :room_id, taken.seq, :sender_id, :content, :content_type,
            :metadata, :client_message_id, :created_at
        FROM taken
    ), marked AS (
        UPDATE room_members SET read_seq = taken.seq FROM taken
        WHERE room_members.client_id = :client_id AND room_members.room_id = :room_id
            AND room_members.user_id = :reader_id AND room_members.read_seq < taken.seq
    )
    SELECT seq, was_active FROM taken
    """
    return text(sql).bindparams(
        bindparam("created_at", type_=UTCDateTime),
        bindparam("metadata", type_=JSON),
        bindparam("sender_id", type_=String),
        bindparam("client_message_id", type_=String),
        bindparam("reader_id", type_=String),
    )


_APPEND_PG = _append_pg("")
_APPEND_PG_MEMBER = _append_pg(
    "AND EXISTS (SELECT 1 FROM room_members AS m WHERE m.client_id = :client_id "
    "AND m.room_id = r.id AND m.user_id = :member_id)"
)


async def _append_sqlite(conn: AsyncConnection, params: dict[str, Any]) -> Appended | None:
    # BEGIN IMMEDIATE (app.core.db) gave this transaction the write lock: no other writer
    # runs until the commit, so reading the room and then updating it is race-free.
    client_id, room_id = params["client_id"], params["room_id"]
    room = select(_rooms.c.is_active).where(_rooms.c.client_id == client_id, _rooms.c.id == room_id)
    if params["member_id"] is not None:
        room = room.where(
            exists().where(
                _members.c.client_id == client_id,
                _members.c.room_id == room_id,
                _members.c.user_id == params["member_id"],
            )
        )
    was_active = (await conn.execute(room)).scalar_one_or_none()
    if was_active is None:
        return None
    seq = (
        await conn.execute(
            update(_rooms)
            .where(_rooms.c.client_id == client_id, _rooms.c.id == room_id)
            .values(
                last_seq=_rooms.c.last_seq + 1,
                last_activity_at=params["created_at"],
                is_active=True,
                deactivated_at=None,
            )
            .returning(_rooms.c.last_seq)
        )
    ).scalar_one()
    values = {c: params[c] for c in _MESSAGE_COLUMNS}
    await conn.execute(_messages.insert().values(seq=seq, **values))
    if params["reader_id"] is not None:
        await conn.execute(
            update(_members)
            .where(
                _members.c.client_id == client_id,
                _members.c.room_id == room_id,
                _members.c.user_id == params["reader_id"],
                _members.c.read_seq < seq,
            )
            .values(read_seq=seq)
        )
    return Appended(int(seq), not was_active)


_MESSAGE_COLUMNS = (
    "id",
    "client_id",
    "room_id",
    "sender_id",
    "content",
    "content_type",
    "metadata",
    "client_message_id",
    "created_at",
)
