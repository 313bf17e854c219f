"""Queries for heartbeats (not tenant data: no client scope)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.system.models import Heartbeat


async def touch_heartbeat(session: AsyncSession, name: str) -> Heartbeat:
    """Record a beat for `name`, creating its row on first use."""
    row = await session.get(Heartbeat, name, with_for_update=True)
    if row is None:
        row = Heartbeat(name=name, count=0)
        session.add(row)
    row.beat_at = utcnow()
    row.count += 1
    return row


async def get_heartbeat(session: AsyncSession, name: str) -> Heartbeat | None:
    """The heartbeat row for `name`, if any beat was recorded."""
    return await session.get(Heartbeat, name, populate_existing=True)
