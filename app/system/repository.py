"""Queries for heartbeats and task probes (not tenant data: no client scope)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.clock import utcnow
from app.system.models import Heartbeat, TaskProbe


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


async def insert_probe(session: AsyncSession, probe_id: str, fail_times: int) -> TaskProbe:
    """A new probe waiting to be run."""
    probe = TaskProbe(id=probe_id, fail_times=fail_times)
    session.add(probe)
    return probe


async def count_probe_attempt(session: AsyncSession, probe_id: str) -> TaskProbe | None:
    """Add one attempt to the probe atomically and return its new state."""
    result = await session.execute(
        update(TaskProbe)
        .where(col(TaskProbe.id) == probe_id)
        .values(attempts=col(TaskProbe.attempts) + 1, updated_at=utcnow())
        .returning(TaskProbe)
    )
    return result.scalar_one_or_none()


async def set_probe_status(session: AsyncSession, probe_id: str, status: str) -> None:
    """Mark the probe `status`."""
    await session.execute(
        update(TaskProbe)
        .where(col(TaskProbe.id) == probe_id)
        .values(status=status, updated_at=utcnow())
    )


async def get_probe(session: AsyncSession, probe_id: str) -> TaskProbe | None:
    """The probe's current row."""
    return await session.get(TaskProbe, probe_id, populate_existing=True)
