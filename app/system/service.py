"""Heartbeats: the operator's proof that workers and beat are alive."""

from __future__ import annotations

from app.core.db import Database
from app.system import repository
from app.system.models import Heartbeat


async def record_heartbeat(db: Database, name: str) -> None:
    """Store one beat for `name`."""
    async with db.session() as session:
        await repository.touch_heartbeat(session, name)
        await session.commit()


async def read_heartbeat(db: Database, name: str) -> Heartbeat | None:
    """The last beat of `name`."""
    async with db.session() as session:
        return await repository.get_heartbeat(session, name)
