"""The engine's sweep: due rows and expired leases of a leased table, paged by a cursor,
and cut into batches of doorbells.

The sweep queries are the only cross-tenant reads of a queue (beat runs them for every
client); each row carries its client id, and everything done with it afterwards is
scoped. Ringing does not change a row, so the `(at, id)` cursor is what moves a sweep
through a backlog.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.leasing.queue import LeasedQueue

T = TypeVar("T")

Cursor = tuple[datetime, str]


class Due(NamedTuple):
    """A row to ring the doorbell for; `at` (due time or lease end) + `id` is the cursor."""

    client_id: str
    id: str
    at: datetime


async def due_rows(
    session: AsyncSession,
    q: LeasedQueue,
    *,
    now: datetime,
    limit: int,
    after: Cursor | None = None,
    extra: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Unleased rows due by `now`, oldest first: (client_id, id, due time, *extra)."""
    due_at = q.next_attempt_at
    query = select(q.client_id, q.id, due_at, *extra).where(
        q.status.in_(q.due_statuses),
        due_at <= now,
        or_(q.lease_until.is_(None), q.lease_until < now),
    )
    if after is not None:
        query = query.where(or_(due_at > after[0], and_(due_at == after[0], q.id > after[1])))
    query = query.order_by(due_at, q.id).limit(limit)
    return [tuple(r) for r in (await session.execute(query)).all() if r[2] is not None]


async def due(
    session: AsyncSession,
    q: LeasedQueue,
    *,
    now: datetime,
    limit: int,
    after: Cursor | None = None,
) -> list[Due]:
    """`due_rows` as `Due` rows."""
    rows = await due_rows(session, q, now=now, limit=limit, after=after)
    return [Due(r[0], r[1], r[2]) for r in rows]


async def expired_leases(
    session: AsyncSession,
    q: LeasedQueue,
    *,
    now: datetime,
    limit: int,
    after: Cursor | None = None,
) -> list[Due]:
    """Leased rows whose lease ended before `now`, oldest lease first; `at` is its end."""
    lease = q.lease_until
    query = select(q.client_id, q.id, lease).where(q.status == q.leased_status, lease < now)
    if after is not None:
        query = query.where(or_(lease > after[0], and_(lease == after[0], q.id > after[1])))
    query = query.order_by(lease, q.id).limit(limit)
    rows = (await session.execute(query)).all()
    return [Due(r[0], r[1], r[2]) for r in rows if r[2] is not None]


async def sweep(
    session: AsyncSession, q: LeasedQueue, *, now: datetime, page: int, max_rows: int
) -> list[Due]:
    """Every due row then every expired lease, up to `max_rows` of each kind (the next
    sweep continues), read a page at a time."""
    found: list[Due] = []
    for read in (due, expired_leases):
        after: Cursor | None = None
        taken = 0
        while taken < max_rows:
            rows = await read(session, q, now=now, limit=min(page, max_rows - taken), after=after)
            found.extend(rows)
            taken += len(rows)
            if len(rows) < page:
                break
            after = (rows[-1].at, rows[-1].id)
    return found


def batches(items: Iterable[T], size: int) -> list[list[T]]:
    """`items` cut into lists of at most `size`, in order: one doorbell message each."""
    if size <= 0:
        raise ValueError("size must be positive")
    out: list[list[T]] = []
    for item in items:
        if not out or len(out[-1]) >= size:
            out.append([])
        out[-1].append(item)
    return out
