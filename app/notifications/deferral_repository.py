"""Deliveries our own limits refused (DESIGN.md §4: "our limits defer, never fail"): a
claim given back unspent, and waiting rows handed over to other workers.

A claim counts an attempt (`claimed_values`: `attempts + 1`, which is also the fence of
every finish). A claim that ends without a request — refused by an in-flight cap or a quota,
or taken by a worker that is shutting down — gives that attempt back here: the row returns to
`pending` (never attempted) or `retrying`, its lease cleared, no attempt row written. Fenced
like every finish (status `sending` and the claim's own attempt number), so a worker whose
lease expired cannot give back a row someone else holds now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.notifications.models import PENDING, RETRYING, SENDING, Delivery


async def give_back_many(
    session: AsyncSession,
    client_id: str,
    claims: Sequence[tuple[str, int, datetime | None]],
    *,
    now: datetime,
) -> set[str]:
    """Give back each claimed (delivery id, attempts, due) unspent; the ids given back.

    `due` None keeps the time the row was due (it is still due: the sweep's backstop rings
    it once per lease of waiting), a time makes it due then (a quota's window reset). One
    UPDATE per distinct due time.
    """
    by_due: dict[datetime | None, list[tuple[str, int]]] = defaultdict(list)
    for delivery_id, attempts, due in claims:
        by_due[due].append((delivery_id, attempts))
    done: set[str] = set()
    for due, rows in by_due.items():
        next_attempt_at = col(Delivery.next_attempt_at) if due is None else due
        result = await session.execute(
            update(Delivery)
            .where(
                col(Delivery.client_id) == client_id,
                col(Delivery.id).in_(sorted(r[0] for r in rows)),
                tuple_(col(Delivery.id), col(Delivery.attempts)).in_(rows),
                col(Delivery.status) == SENDING,
            )
            .values(
                # Back to what it was before the claim: never attempted → pending.
                status=case((col(Delivery.attempts) <= 1, PENDING), else_=RETRYING),
                attempts=col(Delivery.attempts) - 1,
                # A parked row (no due time) a stopping worker took is due now instead:
                # its user was online, so the next worker should not wait for a connect.
                next_attempt_at=func.coalesce(next_attempt_at, now),
                lease_until=None,
                updated_at=now,
            )
            .returning(col(Delivery.id))
            .execution_options(synchronize_session=False)
        )
        done.update(result.scalars().all())
    return done


async def hand_over(
    session: AsyncSession, client_id: str, rows: Sequence[tuple[str, int]], *, now: datetime
) -> int:
    """Make waiting (delivery id, attempts) rows due `now`, so the next sweep rings them for
    another worker at once (this one is stopping); how many.

    Only rows still as they were given back: unleased, pending/retrying with the same
    attempt count and due by now — one that has since been attempted, or deferred to a
    later time, keeps its own schedule.
    """
    if not rows:
        return 0
    result = await session.execute(
        update(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.id).in_(sorted(r[0] for r in rows)),
            tuple_(col(Delivery.id), col(Delivery.attempts)).in_(list(rows)),
            col(Delivery.status).in_((PENDING, RETRYING)),
            col(Delivery.lease_until).is_(None),
            col(Delivery.next_attempt_at) <= now,
        )
        .values(next_attempt_at=now, updated_at=now)
        .returning(col(Delivery.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.all())
