"""The relay's beat work: ring due deliveries and expired leases again, expire parked
websocket deliveries, purge old attempts and idempotency records.

Ringing does not change rows, so a row still queued from an earlier ring is rung again; the
duplicate costs one claim query that takes nothing (claims are atomic). That is the price of
"a lost message delays work, never loses it" without a rung-at column.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from app.core.clock import utcnow
from app.notifications import delivery_repository as deliveries
from app.notifications import repository
from app.notifications.doorbell import ring
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")

PAGE = 1000
# Rows rung per sweep at most; the next sweep (seconds later) continues.
SWEEP_MAX = 20_000
PURGE_BATCH = 1000
PURGE_MAX_BATCHES = 100


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    due: int
    expired_leases: int
    expired_parked: int


async def sweep_due(rt: Runtime) -> SweepReport:
    """Ring every due delivery and every expired lease (bounded), expire old parked ones."""
    now = utcnow()
    by_client: dict[str, list[str]] = defaultdict(list)
    counts = []
    async with rt.db.read_session() as session:
        for query in (deliveries.due_deliveries, deliveries.expired_leases):
            found, after = 0, None
            while found < SWEEP_MAX:
                rows = await query(session, now=now, limit=PAGE, after=after)
                for row in rows:
                    by_client[row.client_id].append(row.id)
                found += len(rows)
                if len(rows) < PAGE:
                    break
                after = (rows[-1].at, rows[-1].id)
            counts.append(found)
    for client_id, ids in by_client.items():
        await asyncio.to_thread(ring, client_id, ids)
    expired = await _expire_parked(rt)
    return SweepReport(due=counts[0], expired_leases=counts[1], expired_parked=expired)


async def _expire_parked(rt: Runtime) -> int:
    now = utcnow()
    before = now - timedelta(seconds=rt.settings.WEBSOCKET_PARK_EXPIRY_SECONDS)
    total = 0
    while True:
        async with rt.db.session() as session:
            rows = await deliveries.expire_parked(
                session, created_before=before, now=now, limit=PAGE
            )
            for client_id, notification_id in sorted(set(rows)):
                await repository.lock(session, client_id, notification_id)
                await repository.refresh_status(session, client_id, notification_id, now=now)
            await session.commit()
        total += len(rows)
        if len(rows) < PAGE:
            return total


async def purge(rt: Runtime) -> tuple[int, int]:
    """Delete attempts older than ATTEMPT_RETENTION_DAYS and expired idempotency records,
    one bounded transaction per batch; (attempts, records) deleted."""
    now = utcnow()
    before = now - timedelta(days=rt.settings.ATTEMPT_RETENTION_DAYS)
    attempts = records = 0
    for _ in range(PURGE_MAX_BATCHES):
        async with rt.db.session() as session:
            n = await deliveries.purge_attempts(session, before=before, limit=PURGE_BATCH)
            await session.commit()
        attempts += n
        if n < PURGE_BATCH:
            break
    for _ in range(PURGE_MAX_BATCHES):
        async with rt.db.session() as session:
            n = await repository.purge_idempotency_records(session, now=now, limit=PURGE_BATCH)
            await session.commit()
        records += n
        if n < PURGE_BATCH:
            break
    return attempts, records
