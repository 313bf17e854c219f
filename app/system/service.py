"""Heartbeats and task probes: the operator's proof that workers and beat are alive."""

from __future__ import annotations

from app.core.db import Database
from app.core.ids import new_id
from app.system import repository
from app.system.models import Heartbeat, TaskProbe


async def record_heartbeat(db: Database, name: str) -> None:
    """Store one beat for `name`."""
    async with db.session() as session:
        await repository.touch_heartbeat(session, name)
        await session.commit()


async def read_heartbeat(db: Database, name: str) -> Heartbeat | None:
    """The last beat of `name`."""
    async with db.session() as session:
        return await repository.get_heartbeat(session, name)


async def create_probe(db: Database, fail_times: int) -> str:
    """Store a probe that will fail `fail_times` attempts before succeeding; return its id."""
    probe_id = new_id()
    async with db.session() as session:
        await repository.insert_probe(session, probe_id, fail_times)
        await session.commit()
    return probe_id


async def attempt_probe(db: Database, probe_id: str) -> bool:
    """Count an attempt; True when this attempt succeeds, False when it must be retried."""
    async with db.session() as session:
        probe = await repository.count_probe_attempt(session, probe_id)
        if probe is None:
            return True
        succeeded = probe.attempts > probe.fail_times
        await repository.set_probe_status(session, probe_id, "done" if succeeded else "retrying")
        await session.commit()
        return succeeded


async def read_probe(db: Database, probe_id: str) -> TaskProbe | None:
    """The probe's current state."""
    async with db.session() as session:
        return await repository.get_probe(session, probe_id)
