"""The relay's beat work: ring due deliveries and expired leases again, expire parked
websocket deliveries, purge old attempts and idempotency records.

Ringing does not change rows, so the sweep decides from when a row fell due, and from when
this process swept before, whether it needs a ring (`should_ring`): a backlog is not re-rung
on every sweep, and a lost message still costs at most one lease of delay. Judging against
the previous sweep, not a fixed window, means a sweep that comes late (a busy worker, a
stalled beat) still rings what fell due meanwhile. A duplicate ring costs one claim query
that takes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.clock import utcnow
from app.inbox import service as inbox_service
from app.notifications import idempotency_repository as idempotency
from app.notifications import parked_repository as parking
from app.notifications import repository
from app.notifications import sweep_repository as sweeps
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
    """Ring due deliveries that need it and every expired lease (bounded); expire old
    parked ones."""
    now = utcnow()
    # A process's first sweep takes what fell due in the last two intervals as new.
    first = now - timedelta(seconds=2 * rt.settings.DELIVERY_SWEEP_INTERVAL_SECONDS)
    since = min(rt.swept_at or first, now)
    lease = rt.settings.DELIVERY_LEASE_SECONDS
    by_client: dict[str, list[str]] = defaultdict(list)
    due = leases = 0
    async with rt.db.read_session() as session:
        after: tuple[datetime, str] | None = None
        for _ in range(SWEEP_MAX // PAGE):
            rows = await sweeps.due_for_sweep(session, now=now, limit=PAGE, after=after)
            for row in rows:
                if should_ring(row.at, row.fresh, since=since, now=now, lease=lease):
                    by_client[row.client_id].append(row.id)
                    due += 1
            if len(rows) < PAGE:
                break
            after = (rows[-1].at, rows[-1].id)
        after = None
        for _ in range(SWEEP_MAX // PAGE):
            expired = await sweeps.expired_leases(session, now=now, limit=PAGE, after=after)
            for item in expired:
                by_client[item.client_id].append(item.id)
            leases += len(expired)
            if len(expired) < PAGE:
                break
            after = (expired[-1].at, expired[-1].id)
    for client_id, ids in by_client.items():
        await rt.doorbell.ring_deliveries(client_id, ids)
    await rt.doorbell.drain()
    # When this process (runtime) last swept: rows that fell due after it are new to it.
    # max: of two sweeps overlapping on one process, the later one's time stands.
    rt.swept_at = max(now, rt.swept_at or now)
    parked = await _expire_parked(rt)
    if due or leases or parked:
        # One line for a sweep that did something; the idle ones (every few seconds) none.
        log.info(
            "notifications sweep",
            extra={"due": due, "expired_leases": leases, "expired_parked": parked},
        )
    return SweepReport(due=due, expired_leases=leases, expired_parked=parked)


def should_ring(
    due_at: datetime, fresh: bool, *, since: datetime, now: datetime, lease: float
) -> bool:
    """Whether a sweep at `now` rings a row due since `due_at`; `since`: this process's
    previous sweep.

    A row that fell due after the previous sweep (a retry, a scheduled send: nobody rang
    for it) is rung now. A row already due then was rung and is queued behind other work,
    or its message was lost: it is rung again each time its wait crosses another whole
    `lease`, so a backlog is not flooded with duplicates yet a lost message costs at most
    one lease of delay. Fresh sends were rung by the API at commit: the lease rule only.
    """
    if due_at > since and not fresh:
        return True
    waited_then = (since - due_at).total_seconds()
    waited_now = (now - due_at).total_seconds()
    return waited_now >= lease and waited_now // lease > max(waited_then, 0.0) // lease


async def _expire_parked(rt: Runtime) -> int:
    now = utcnow()
    before = now - timedelta(seconds=rt.settings.WEBSOCKET_PARK_EXPIRY_SECONDS)
    total = 0
    while True:
        async with rt.db.session() as session:
            rows = await parking.expire_parked(session, created_before=before, now=now, limit=PAGE)
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
            n = await sweeps.purge_attempts(session, before=before, limit=PURGE_BATCH)
            await session.commit()
        attempts += n
        if n < PURGE_BATCH:
            break
    for _ in range(PURGE_MAX_BATCHES):
        async with rt.db.session() as session:
            n = await idempotency.purge_expired(session, now=now, limit=PURGE_BATCH)
            await session.commit()
        records += n
        if n < PURGE_BATCH:
            break
    if attempts or records:
        log.info(
            "notifications purge", extra={"attempts": attempts, "idempotency_records": records}
        )
    return attempts, records


async def purge_inbox(rt: Runtime) -> int:
    """Delete inbox items older than INBOX_RETENTION_DAYS, one bounded transaction per
    batch; how many."""
    total = 0
    for _ in range(PURGE_MAX_BATCHES):
        async with rt.db.session() as session:
            n = await inbox_service.purge(
                session, retention_days=rt.settings.INBOX_RETENTION_DAYS, limit=PURGE_BATCH
            )
            await session.commit()
        total += n
        if n < PURGE_BATCH:
            break
    if total:
        log.info("inbox purge", extra={"items": total})
    return total
