"""Auto-deactivation: rooms idle longer than their type's threshold become inactive."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    failed: int = 0  # plans (type x client) skipped after an error


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
            try:
                await _sweep_plan(
                    db,
                    bus,
                    report,
                    room_type,
                    client_id,
                    seconds,
                    special,
                    now,
                    batch_size=batch_size,
                    max_batches=max_batches,
                )
            except Exception:
                # One tenant's threshold (or one bad row) must not stop the sweep for the
                # others: log it (Sentry sees the error record) and go on with the next plan.
                report.failed += 1
                log.exception(
                    "room sweep failed for one plan; skipping it",
                    extra={"client_id": client_id, "room_type": room_type, "seconds": seconds},
                )
    if report.deactivated:
        log.info(
            "rooms deactivated", extra={"count": report.deactivated, "batches": report.batches}
        )
    return report


async def _sweep_plan(
    db: Database,
    bus: EventBus,
    report: SweepReport,
    room_type: str,
    client_id: str | None,
    seconds: int,
    special: dict[str, int],
    now: datetime,
    *,
    batch_size: int,
    max_batches: int,
) -> None:
    """Deactivate the due rooms of one type for one client (or for every client without
    its own threshold, `client_id` None)."""
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
            await bus.publish_after_commit(
                owner,
                events.room_target(room_id),
                events.ROOM_DEACTIVATED,
                {"room_id": room_id, "deactivated_at": now.isoformat()},
            )
        if len(done) < batch_size:
            break
