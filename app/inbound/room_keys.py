"""Room keys of inbound hooks: the room reserved for an external key (e.g. a ticket id).

Always scoped by client id (and hook). See InboundRoomKey for why the id is reserved first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.inbound.models import InboundRoomKey


async def reserve(
    session: AsyncSession, client_id: str, hook_id: str, key: str, *, room_id: str, now: datetime
) -> str:
    """The room id reserved for `key`: `room_id` if this call reserved it, else the
    earlier reservation's (`INSERT … ON CONFLICT DO NOTHING`, then read)."""
    stmt = (
        dialect_insert(session, InboundRoomKey)
        .values(client_id=client_id, hook_id=hook_id, key=key, room_id=room_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["client_id", "hook_id", "key"])
    )
    await session.execute(stmt)
    query = select(col(InboundRoomKey.room_id)).where(
        col(InboundRoomKey.client_id) == client_id,
        col(InboundRoomKey.hook_id) == hook_id,
        col(InboundRoomKey.key) == key,
    )
    return str((await session.execute(query)).scalar_one())


async def replace(
    session: AsyncSession,
    client_id: str,
    hook_id: str,
    key: str,
    *,
    old_room_id: str,
    new_room_id: str,
) -> str:
    """Point `key` at `new_room_id` if it still points at `old_room_id` (its room is gone);
    the id it points at afterwards (another replacer's, when one won)."""
    await session.execute(
        update(InboundRoomKey)
        .where(
            col(InboundRoomKey.client_id) == client_id,
            col(InboundRoomKey.hook_id) == hook_id,
            col(InboundRoomKey.key) == key,
            col(InboundRoomKey.room_id) == old_room_id,
        )
        .values(room_id=new_room_id)
        .execution_options(synchronize_session=False)
    )
    query = select(col(InboundRoomKey.room_id)).where(
        col(InboundRoomKey.client_id) == client_id,
        col(InboundRoomKey.hook_id) == hook_id,
        col(InboundRoomKey.key) == key,
    )
    return str((await session.execute(query)).scalar_one())


async def get(session: AsyncSession, client_id: str, hook_id: str, key: str) -> str | None:
    """The room id reserved for `key`, if any."""
    query = select(col(InboundRoomKey.room_id)).where(
        col(InboundRoomKey.client_id) == client_id,
        col(InboundRoomKey.hook_id) == hook_id,
        col(InboundRoomKey.key) == key,
    )
    return (await session.execute(query)).scalar_one_or_none()
