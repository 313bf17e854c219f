"""Queries on event_types, every one scoped by client id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.events.models import EventType


def add(session: AsyncSession, row: EventType) -> None:
    """Stage a new event type."""
    session.add(row)


async def get(session: AsyncSession, client_id: str, name: str) -> EventType | None:
    """One event type of the client by name (archived ones too)."""
    result = await session.execute(
        select(EventType).where(col(EventType.client_id) == client_id, col(EventType.name) == name)
    )
    return result.scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    client_id: str,
    limit: int,
    after: str | None,
    include_archived: bool,
) -> Sequence[EventType]:
    """`limit + 1` event types of the client ordered by name, after the cursor."""
    query = select(EventType).where(col(EventType.client_id) == client_id)
    if after:
        query = query.where(col(EventType.name) > after)
    if not include_archived:
        query = query.where(col(EventType.archived).is_(False))
    result = await session.execute(query.order_by(col(EventType.name)).limit(limit + 1))
    return result.scalars().all()


async def all_live(session: AsyncSession, client_id: str) -> Sequence[EventType]:
    """Every non-archived event type of the client, by name (the OpenAPI document)."""
    result = await session.execute(
        select(EventType)
        .where(col(EventType.client_id) == client_id, col(EventType.archived).is_(False))
        .order_by(col(EventType.name))
    )
    return result.scalars().all()


async def lookup(
    session: AsyncSession, client_id: str, name: str
) -> tuple[bool, bool, dict[str, Any] | None]:
    """For a send: (the client has a catalog, `name` is in it, its payload schema), in one
    query: the live type named `name` sorts first, else any live type proves a catalog."""
    result = await session.execute(
        select(col(EventType.name), col(EventType.payload_schema))
        .where(col(EventType.client_id) == client_id, col(EventType.archived).is_(False))
        .order_by(case((col(EventType.name) == name, 0), else_=1))
        .limit(1)
    )
    row = result.first()
    if row is None:
        return False, False, None
    known = row[0] == name
    return True, known, row[1] if known else None


async def delete(session: AsyncSession, row: EventType) -> None:
    """Delete an event type."""
    await session.delete(row)
