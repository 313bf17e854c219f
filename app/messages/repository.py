"""Queries on messages, always scoped by client id and room."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

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
