"""Rooms: creation (direct rooms unique per pair), access, members, read markers.

Every change is committed first and published after, so no event announces a row that
could still roll back. A write session does nothing after its commit: answers are built
from what was read or written before it (on SQLite another query would take the write
lock again just to read).

Large rooms (more than `member_ids_max` members, the ROOM_MEMBER_IDS_MAX setting) are
shown without `member_ids` (`member_count` only; `GET /rooms/{id}/members` pages them),
and their joins are announced to each joining user only, in bounded batches: the room
copy of N joins would reach N member connections each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth.principal import Principal
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.realtime import events, room_cache
from app.realtime.bus import EventBus
from app.rooms import repository
from app.rooms.models import Room, RoomMember
from app.rooms.schemas import MemberOut, RoomCreate, RoomOut, RoomPatch
from app.tenants import service as tenants
from app.tenants.schemas import RoomType
from app.users import service as users

# Membership events published concurrently at most this many at a time.
MEMBERSHIP_EVENT_BATCH = 100


async def create_room(
    session: AsyncSession,
    bus: EventBus,
    principal: Principal,
    body: RoomCreate,
    *,
    member_ids_max: int,
    room_id: str | None = None,
) -> tuple[RoomOut, bool]:
    """Create a room (True), or return the existing direct room of the pair (False).

    `room_id` is the id to give the room (default: a new one) — a caller that reserved an
    id (inbound room keys) gets IntegrityError when a room with it already exists.
    """
    members = list(dict.fromkeys(body.member_ids))
    creator = principal.user_id
    if creator is not None and creator not in members:
        members.insert(0, creator)
    client = await tenants.get_client(session, principal.client_id)
    limit = tenants.effective_settings(client).max_room_members
    if len(members) > limit:
        raise Unprocessable(f"A room can have at most {limit} members")
    missing = await users.missing_users(session, principal.client_id, members)
    if missing:
        raise Unprocessable(f"Unknown user ids: {', '.join(missing[:10])}")
    direct_key = None
    if body.type is RoomType.direct:
        if len(members) != 2:
            raise Unprocessable("A direct room has exactly two distinct members")
        direct_key = ":".join(sorted(members))
        existing = await repository.get_direct(session, principal.client_id, direct_key)
        if existing is not None:
            return await _out(session, existing, member_ids_max), False
    room = Room(
        id=room_id or new_id(),
        client_id=principal.client_id,
        name=body.name,
        type=body.type.value,
        direct_key=direct_key,
        created_by=creator,
        metadata_=body.metadata,
    )
    repository.add_room(session, room)
    await session.flush()
    for user_id in members:
        role = "owner" if user_id == creator else "member"
        repository.add_member(
            session,
            RoomMember(room_id=room.id, user_id=user_id, client_id=principal.client_id, role=role),
        )
    try:
        await session.commit()
    except IntegrityError:
        # Another request created the same direct room first: answer with that one.
        await session.rollback()
        if direct_key is None:
            raise
        existing = await repository.get_direct(session, principal.client_id, direct_key)
        if existing is None:
            raise
        return await _out(session, existing, member_ids_max), False
    small = len(members) <= member_ids_max
    await room_cache.rooms_changed(
        bus.broadcast, principal.client_id, user_ids=members, room_ids=[room.id]
    )
    await _announce_joins(bus, principal.client_id, room.id, members, to_room=small)
    return RoomOut.of(room, members if small else None, len(members)), True


async def accessible_room(
    session: AsyncSession, principal: Principal, room_id: str, *, lock: bool = False
) -> Room:
    """The room if the caller may use it (master, or a member); otherwise 404."""
    room = await repository.get(session, principal.client_id, room_id, for_update=lock)
    if room is None:
        raise NotFound("No such room")
    if principal.user_id is not None and not principal.is_master:
        member = await repository.membership(
            session, principal.client_id, room_id, principal.user_id
        )
        if member is None:
            raise NotFound("No such room")
    return room


async def get_room(
    session: AsyncSession, principal: Principal, room_id: str, *, member_ids_max: int
) -> RoomOut:
    """One room, with the caller's unread count for a user key."""
    room = await accessible_room(session, principal, room_id)
    unread = None
    if principal.user_id is not None:
        member = await repository.membership(
            session, principal.client_id, room_id, principal.user_id
        )
        unread = max(0, room.last_seq - member.read_seq) if member else None
    return await _out(session, room, member_ids_max, unread)


async def list_rooms(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    after: str | None,
    room_type: RoomType | None,
    is_active: bool | None,
    all_rooms: bool = False,
    member_ids_max: int,
) -> tuple[list[RoomOut], bool, str | None]:
    """A user's rooms with unread counts, or (master) every room of the client."""
    user_id = None if all_rooms or principal.is_master else principal.user_id
    rows = await repository.list_page(
        session,
        principal.client_id,
        limit=limit,
        after=after,
        room_type=room_type.value if room_type else None,
        is_active=is_active,
        user_id=user_id,
    )
    has_more = len(rows) > limit
    rows = list(rows[:limit])
    counts = await repository.member_counts(
        session, principal.client_id, [room.id for room, _ in rows]
    )
    small = [rid for rid, count in counts.items() if count <= member_ids_max]
    members = await repository.member_ids(session, principal.client_id, small)
    out = [
        RoomOut.of(
            room,
            members.get(room.id),
            counts[room.id],
            max(0, room.last_seq - read_seq) if read_seq is not None else None,
        )
        for room, read_seq in rows
    ]
    return out, has_more, (out[-1].id if has_more and out else None)


async def update_room(
    session: AsyncSession,
    principal: Principal,
    room_id: str,
    patch: RoomPatch,
    *,
    member_ids_max: int,
) -> RoomOut:
    """Rename a room or replace its metadata."""
    room = await accessible_room(session, principal, room_id)
    changes = patch.model_dump(exclude_unset=True)
    if "name" in changes:
        room.name = changes["name"]
    if "metadata" in changes:
        room.metadata_ = changes["metadata"] or {}
    members, count = await _members_shown(session, room, member_ids_max)
    await session.commit()
    return RoomOut.of(room, members, count)


async def delete_room(
    session: AsyncSession, bus: EventBus, principal: Principal, room_id: str
) -> None:
    """Delete a room with its members and messages."""
    await accessible_room(session, principal, room_id)
    await repository.delete_room(session, principal.client_id, room_id)
    await session.commit()
    await room_cache.rooms_changed(bus.broadcast, principal.client_id, room_ids=[room_id])


async def add_members(
    session: AsyncSession,
    bus: EventBus,
    principal: Principal,
    room_id: str,
    user_ids: Sequence[str],
    *,
    member_ids_max: int,
) -> RoomOut:
    """Add users to a room (already-members are left as they are)."""
    room = await accessible_room(session, principal, room_id, lock=True)
    if room.type == RoomType.direct.value:
        raise Conflict("A direct room's members cannot change")
    wanted = list(dict.fromkeys(user_ids))
    missing = await users.missing_users(session, principal.client_id, wanted)
    if missing:
        raise Unprocessable(f"Unknown user ids: {', '.join(missing[:10])}")
    # Bounded by the request (at most 1000 ids), not by the room (up to 100,000 members).
    already = await repository.members_among(session, principal.client_id, room_id, wanted)
    new = [u for u in wanted if u not in already]
    current = await repository.count_members(session, principal.client_id, room_id)
    client = await tenants.get_client(session, principal.client_id)
    limit = tenants.effective_settings(client).max_room_members
    if current + len(new) > limit:
        raise Unprocessable(f"A room can have at most {limit} members")
    for user_id in new:
        repository.add_member(
            session, RoomMember(room_id=room_id, user_id=user_id, client_id=principal.client_id)
        )
    await session.flush()
    members, count = await _members_shown(session, room, member_ids_max)
    await session.commit()
    await room_cache.rooms_changed(
        bus.broadcast, principal.client_id, user_ids=new, room_ids=[room_id]
    )
    await _announce_joins(bus, principal.client_id, room_id, new, to_room=count <= member_ids_max)
    return RoomOut.of(room, members, count)


async def list_members(
    session: AsyncSession, principal: Principal, room_id: str, *, limit: int, after: str | None
) -> tuple[list[MemberOut], bool, str | None]:
    """A page of the room's members by user id, whether more exist, and the next cursor."""
    await accessible_room(session, principal, room_id)
    rows = await repository.members_page(
        session, principal.client_id, room_id, limit=limit, after=after
    )
    has_more = len(rows) > limit
    page = [MemberOut.of(m) for m in rows[:limit]]
    return page, has_more, (page[-1].user_id if has_more and page else None)


async def remove_member(
    session: AsyncSession, bus: EventBus, principal: Principal, room_id: str, user_id: str
) -> None:
    """Remove a user from a room."""
    room = await accessible_room(session, principal, room_id, lock=True)
    if room.type == RoomType.direct.value:
        raise Conflict("A direct room's members cannot change")
    if not await repository.remove_member(session, principal.client_id, room_id, user_id):
        raise NotFound("That user is not a member of this room")
    await session.commit()
    await room_cache.rooms_changed(
        bus.broadcast, principal.client_id, user_ids=[user_id], room_ids=[room_id]
    )
    await _publish_membership(bus, principal.client_id, room_id, user_id, joined=False)


async def mark_read(
    session: AsyncSession, bus: EventBus, principal: Principal, room_id: str, seq: int
) -> int:
    """Move the caller's read marker to `seq` (clamped to the room, never backwards)."""
    room = await accessible_room(session, principal, room_id)
    if principal.user_id is None:
        raise Unprocessable("Read markers belong to users: use a user key")
    target = min(seq, room.last_seq)
    moved = await repository.set_read_seq(
        session, principal.client_id, room_id, principal.user_id, target
    )
    if moved is None:
        # Nothing moved: answer where the marker stands, read before the transaction ends.
        member = await repository.membership(
            session, principal.client_id, room_id, principal.user_id
        )
        await session.commit()
        return member.read_seq if member else 0
    await session.commit()
    await bus.publish_after_commit(
        principal.client_id,
        events.room_target(room_id),
        events.READ,
        {"room_id": room_id, "user_id": principal.user_id, "seq": moved},
    )
    return moved


async def rooms_of_user(
    conn: AsyncConnection, client_id: str, user_id: str, presence_max_members: int
) -> list[tuple[str, bool]]:
    """Every room of a user, each with whether it hears the user's presence (the gateway
    subscribes a new connection to them and tells those that hear it)."""
    return await repository.rooms_of_user(conn, client_id, user_id, presence_max_members)


async def publish_reactivated(bus: EventBus, client_id: str, room_id: str) -> None:
    """Tell the room it is active again."""
    await bus.publish_after_commit(
        client_id, events.room_target(room_id), events.ROOM_REACTIVATED, {"room_id": room_id}
    )


async def _publish_membership(
    bus: EventBus, client_id: str, room_id: str, user_id: str, *, joined: bool
) -> None:
    name = events.ROOM_MEMBER_JOINED if joined else events.ROOM_MEMBER_LEFT
    data = {"room_id": room_id, "user_id": user_id}
    await bus.publish_after_commit(client_id, events.room_target(room_id), name, data)
    # The user's own connections hear it too, so gateways can (un)subscribe them.
    await bus.publish_after_commit(client_id, events.user_target(user_id), name, data)


async def _announce_joins(
    bus: EventBus, client_id: str, room_id: str, user_ids: Sequence[str], *, to_room: bool
) -> None:
    """`room.member_joined` for each joining user.

    A small room hears each join on the room and on the user, in order, as before. A large
    one announces on each user's own target only (that copy is what subscribes the user's
    connections): the room copy would be N joins to N member connections. Those are sent
    MEMBERSHIP_EVENT_BATCH at a time, concurrently, so a 10,000-member room costs a
    hundred round trips to the bus rather than 20,000.
    """
    if to_room:
        for user_id in user_ids:
            await _publish_membership(bus, client_id, room_id, user_id, joined=True)
        return
    for start in range(0, len(user_ids), MEMBERSHIP_EVENT_BATCH):
        batch = user_ids[start : start + MEMBERSHIP_EVENT_BATCH]
        await asyncio.gather(
            *(
                bus.publish_after_commit(
                    client_id,
                    events.user_target(user_id),
                    events.ROOM_MEMBER_JOINED,
                    {"room_id": room_id, "user_id": user_id},
                )
                for user_id in batch
            )
        )


async def _members_shown(
    session: AsyncSession, room: Room, member_ids_max: int
) -> tuple[list[str] | None, int]:
    """The room's member count, and its member ids while it has at most `member_ids_max`."""
    count = await repository.count_members(session, room.client_id, room.id)
    if count > member_ids_max:
        return None, count
    members = await repository.member_ids(session, room.client_id, [room.id])
    return members[room.id], count


async def _out(
    session: AsyncSession, room: Room, member_ids_max: int, unread: int | None = None
) -> RoomOut:
    members, count = await _members_shown(session, room, member_ids_max)
    return RoomOut.of(room, members, count, unread)
