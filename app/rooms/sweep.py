"""Auto-deactivation: rooms idle longer than their type's threshold become inactive."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from app.core.clock import utcnow
from app.core.db import Database
from app.realtime import events
from app.realtime.bus import EventBus
from app.rooms import repository
from app.tenants import service as tenants
from app.tenants.schemas import DEFAULT_ROOM_INACTIVITY_SECONDS

log = logging.getLogger("chatapi.rooms.sweep")


@dataclass
class SweepReport:
    """What one sweep did."""

    deactivated: int = 0
    batches: int = 0


async def sweep_inactive_rooms(
    db: Database, bus: EventBus, *, batch_size: int, max_batches: int = 1000
) -> SweepReport:
    """Deactivate every due room in bounded batches (one short transaction each), then
    publish `room.deactivated` for each one."""
    report = SweepReport()
    # A read: a write session would take SQLite's write lock for it.
    async with db.read_session() as session:
        overrides = await tenants.inactivity_overrides(session)
    now = utcnow()
    for room_type, default_seconds in DEFAULT_ROOM_INACTIVITY_SECONDS.items():
        # Clients with their own threshold for this type are swept on their own.
        special = {
            cid: secs
            for cid, by_type in overrides.items()
            if (secs := by_type.get(room_type)) is not None and secs != default_seconds
        }
        plans: list[tuple[str | None, int]] = [(None, default_seconds)]
        plans += list(special.items())
        for client_id, seconds in plans:
            older_than = now - timedelta(seconds=seconds)
            while report.batches < max_batches:
                async with db.session() as session:
                    done = await repository.deactivate_batch(
                        session,
                        room_type=room_type,
                        older_than=older_than,
                        now=now,
                        limit=batch_size,
                        client_id=client_id,
                        skip_clients=list(special) if client_id is None else [],
                    )
                    await session.commit()
                report.batches += 1
                report.deactivated += len(done)
                for owner, room_id in done:
                    await bus.publish(
                        owner,
                        events.room_target(room_id),
                        events.ROOM_DEACTIVATED,
                        {"room_id": room_id, "deactivated_at": now.isoformat()},
                    )
                if len(done) < batch_size:
                    break
    if report.deactivated:
        log.info(
            "rooms deactivated", extra={"count": report.deactivated, "batches": report.batches}
        )
    return report
