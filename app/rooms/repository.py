"""Queries on rooms and members, always scoped by client id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    bindparam,
    case,
    delete,
    false,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.rooms.models import Room, RoomMember


async def get(
    session: AsyncSession, client_id: str, room_id: str, *, for_update: bool = False
) -> Room | None:
    """One room of the client (row-locked when asked)."""
    query = select(Room).where(col(Room.client_id) == client_id, col(Room.id) == room_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_direct(session: AsyncSession, client_id: str, direct_key: str) -> Room | None:
    """The client's direct room for this pair."""
    query = select(Room).where(col(Room.client_id) == client_id, col(Room.direct_key) == direct_key)
    return (await session.execute(query)).scalar_one_or_none()


async def membership(
    session: AsyncSession, client_id: str, room_id: str, user_id: str
) -> RoomMember | None:
    """The user's membership of the room."""
    query = select(RoomMember).where(
        col(RoomMember.client_id) == client_id,
        col(RoomMember.room_id) == room_id,
        col(RoomMember.user_id) == user_id,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def member_ids(
    session: AsyncSession, client_id: str, room_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Member ids of each of the client's rooms, in joining order (call it for small rooms)."""
    out: dict[str, list[str]] = {rid: [] for rid in room_ids}
    if not room_ids:
        return out
    query = (
        select(col(RoomMember.room_id), col(RoomMember.user_id))
        .where(col(RoomMember.client_id) == client_id, col(RoomMember.room_id).in_(room_ids))
        .order_by(col(RoomMember.joined_at), col(RoomMember.user_id))
    )
    for room_id, user_id in (await session.execute(query)).all():
        out[room_id].append(user_id)
    return out


async def count_members(session: AsyncSession, client_id: str, room_id: str) -> int:
    """How many members the client's room has."""
    return (await member_counts(session, client_id, [room_id]))[room_id]


async def member_counts(
    session: AsyncSession, client_id: str, room_ids: Sequence[str]
) -> dict[str, int]:
    """How many members each of the client's rooms has (0 for unknown ids)."""
    out = dict.fromkeys(room_ids, 0)
    if not room_ids:
        return out
    query = (
        select(col(RoomMember.room_id), func.count())
        .where(col(RoomMember.client_id) == client_id, col(RoomMember.room_id).in_(room_ids))
        .group_by(col(RoomMember.room_id))
    )
    for room_id, count in (await session.execute(query)).all():
        out[room_id] = int(count)
    return out


async def members_among(
    session: AsyncSession, client_id: str, room_id: str, user_ids: Sequence[str]
) -> set[str]:
    """Which of `user_ids` are members of the client's room (bounded by the list asked)."""
    if not user_ids:
        return set()
    query = select(col(RoomMember.user_id)).where(
        col(RoomMember.client_id) == client_id,
        col(RoomMember.room_id) == room_id,
        col(RoomMember.user_id).in_(user_ids),
    )
    return set((await session.execute(query)).scalars().all())


async def members_page(
    session: AsyncSession, client_id: str, room_id: str, *, limit: int, after: str | None
) -> list[RoomMember]:
    """`limit + 1` members of the client's room by user id after the cursor (the primary
    key (room_id, user_id) serves it without scanning skipped rows)."""
    query = select(RoomMember).where(
        col(RoomMember.client_id) == client_id, col(RoomMember.room_id) == room_id
    )
    if after:
        query = query.where(col(RoomMember.user_id) > after)
    query = query.order_by(col(RoomMember.user_id)).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


def add_room(session: AsyncSession, room: Room) -> None:
    """Stage a new room."""
    session.add(room)


def add_member(session: AsyncSession, member: RoomMember) -> None:
    """Stage a membership."""
    session.add(member)


async def remove_member(session: AsyncSession, client_id: str, room_id: str, user_id: str) -> bool:
    """Remove a membership; False when there was none."""
    result = await session.execute(
        delete(RoomMember)
        .where(
            col(RoomMember.client_id) == client_id,
            col(RoomMember.room_id) == room_id,
            col(RoomMember.user_id) == user_id,
        )
        .returning(col(RoomMember.user_id))
    )
    return result.scalar_one_or_none() is not None


async def delete_room(session: AsyncSession, client_id: str, room_id: str) -> bool:
    """Delete a room with its members and messages (by cascade)."""
    result = await session.execute(
        delete(Room)
        .where(col(Room.client_id) == client_id, col(Room.id) == room_id)
        .returning(col(Room.id))
    )
    return result.scalar_one_or_none() is not None


async def list_page(
    session: AsyncSession,
    client_id: str,
    *,
    limit: int,
    after: str | None,
    room_type: str | None,
    is_active: bool | None,
    user_id: str | None,
) -> Sequence[tuple[Room, int | None]]:
    """`limit + 1` rooms by id after the cursor, with the user's read_seq when given."""
    filters = [col(Room.client_id) == client_id]
    if after:
        filters.append(col(Room.id) > after)
    if room_type is not None:
        filters.append(col(Room.type) == room_type)
    if is_active is not None:
        filters.append(col(Room.is_active) == is_active)
    if user_id is None:
        query = select(Room).where(*filters).order_by(col(Room.id)).limit(limit + 1)
        return [(room, None) for room in (await session.execute(query)).scalars().all()]
    joined = (
        select(Room, col(RoomMember.read_seq))
        .join(RoomMember, col(RoomMember.room_id) == col(Room.id))
        .where(col(RoomMember.user_id) == user_id, col(RoomMember.client_id) == client_id)
        .where(*filters)
        .order_by(col(Room.id))
        .limit(limit + 1)
    )
    return [(row[0], int(row[1])) for row in (await session.execute(joined)).all()]


async def set_read_seq(
    session: AsyncSession, client_id: str, room_id: str, user_id: str, seq: int
) -> int | None:
    """Move the member's read marker forward to `seq` (never back); the new marker."""
    result = await session.execute(
        update(RoomMember)
        .where(
            col(RoomMember.client_id) == client_id,
            col(RoomMember.room_id) == room_id,
            col(RoomMember.user_id) == user_id,
            col(RoomMember.read_seq) < seq,
        )
        .values(read_seq=seq)
        .returning(col(RoomMember.read_seq))
    )
    return result.scalar_one_or_none()


# Built once: aliased() per call costs more than the query it serves (profiled).
_OTHER_MEMBERS = aliased(RoomMember)


def _hears_presence(max_members: BindParameter[int]) -> ColumnElement[bool]:
    """Whether the room (`Room`, correlated) hears its members' presence: not a channel and
    at most `max_members` members. The size test reads at most max_members + 1 rows of the
    room's primary-key index (is there a member past the first max_members?), so a big room
    costs no more than a small one; counting all members did, per connect."""
    others = _OTHER_MEMBERS
    crowded = (
        select(literal_column("1"))
        .select_from(others)
        .where(col(others.room_id) == col(Room.id))
        .correlate(Room)
        .limit(1)
        .offset(max_members)
        .exists()
    )
    return case((col(Room.type) == "channel", false()), else_=~crowded)


# Built once (its cache key is computed once too): a socket connect's only read of rooms.
_ROOMS_OF_USER = (
    select(
        col(RoomMember.room_id), _hears_presence(bindparam("presence_max_members", type_=Integer))
    )
    .join(Room, col(Room.id) == col(RoomMember.room_id))
    .where(
        col(RoomMember.client_id) == bindparam("client_id"),
        col(RoomMember.user_id) == bindparam("user_id"),
    )
)


async def rooms_of_user(
    conn: AsyncConnection, client_id: str, user_id: str, presence_max_members: int
) -> list[tuple[str, bool]]:
    """Every room the user is a member of, each with whether it hears the user's presence
    (not a channel, at most `presence_max_members` members), in one statement."""
    # Scoped by the membership's client id (a room's members carry their room's client):
    # a filter on rooms.client_id as well made SQLite read every room of the client first.
    result = await conn.execute(
        _ROOMS_OF_USER,
        {"client_id": client_id, "user_id": user_id, "presence_max_members": presence_max_members},
    )
    return [(str(room_id), bool(hears)) for room_id, hears in result]


async def deactivate_batch(
    session: AsyncSession,
    *,
    room_type: str,
    older_than: datetime,
    now: datetime,
    limit: int,
    client_id: str | None,
    skip_clients: Sequence[str],
) -> list[tuple[str, str]]:
    """Deactivate up to `limit` idle active rooms of one type; return (client_id, room_id).

    The one query that may span clients: the sweep is the operator's job over every
    tenant (`client_id` narrows it to one, `skip_clients` leaves some out).

    The SELECT walks ix_rooms_sweep (is_active, type, last_activity_at); the UPDATE names
    its rows by primary key, which the planner serves by index once the table is large
    (on a small table it may prefer one sequential pass, which is cheaper there).
    """
    due = select(col(Room.id)).where(
        col(Room.is_active).is_(True),
        col(Room.type) == room_type,
        col(Room.last_activity_at) < older_than,
    )
    if client_id is not None:
        due = due.where(col(Room.client_id) == client_id)
    if skip_clients:
        due = due.where(col(Room.client_id).not_in(skip_clients))
    ids = list(
        (await session.execute(due.order_by(col(Room.last_activity_at)).limit(limit))).scalars()
    )
    if not ids:
        return []
    result = await session.execute(
        update(Room)
        .where(col(Room.id).in_(ids), col(Room.is_active).is_(True))
        .values(is_active=False, deactivated_at=now)
        .returning(col(Room.client_id), col(Room.id))
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1]) for row in result.all()]
