"""The engine's statements on a leased table (`LeasedQueue`): claim and fenced finish.

Claim: one `UPDATE … WHERE <claimable> RETURNING` moves rows to the leased status, leases
them until `now + lease_seconds` and counts the attempt. A leased row whose lease expired
is claimable again (its worker died mid-attempt). Two forms:

- `claim_ids`: the rows a doorbell names. No SKIP LOCKED here: a named row briefly locked
  by someone else (a cancel, a finish, a give-back) must be waited for and re-checked, not
  skipped — skipped, it would wait for the sweep's backstop (one lease) instead.
- `claim_due`: any N due rows (of one client, or of all). On PostgreSQL
  `WITH picked AS (SELECT id … LIMIT N FOR UPDATE SKIP LOCKED) UPDATE … WHERE id IN
  (SELECT id FROM picked) RETURNING …`: concurrent claimers take disjoint rows without
  queueing behind each other. SQLite serializes writers, so the same statement without
  SKIP LOCKED is already disjoint.

Finish: fenced by the attempt number the claim returned — a finish applies only while the
row is in one of `from_statuses` and still carries that attempt number, so a worker whose
lease expired and whose row was re-claimed cannot overwrite its successor's result. A
batch of claims finishes in one statement (`(id, attempts) IN (…)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.leasing.queue import LeasedQueue


def claimable(q: LeasedQueue, now: datetime) -> ColumnElement[bool]:
    """Due and unleased, or leased with an expired lease (its worker died)."""
    return or_(
        and_(
            q.status.in_(q.due_statuses),
            q.next_attempt_at <= now,
            or_(q.lease_until.is_(None), q.lease_until < now),
        ),
        and_(q.status == q.leased_status, q.lease_until < now),
    )


def ids_in(q: LeasedQueue, ids: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """`id IN ids`; on PostgreSQL `id = ANY($1)`, one array parameter, so the statement
    and its parameters are the same shape for a batch of one or of a thousand (an IN list
    is re-rendered and every element bound and cast per execution)."""
    column: ColumnElement[Any] = q.id
    if dialect == "postgresql":
        return column == func.any(bindparam(None, list(ids), type_=ARRAY(String)))
    return column.in_(list(ids))


def claims_in(
    q: LeasedQueue, claims: Sequence[tuple[str, int]], dialect: str
) -> ColumnElement[bool]:
    """`(id, attempts) IN claims`; on PostgreSQL against two unnested array parameters."""
    if dialect == "postgresql":
        pairs = select(
            func.unnest(bindparam(None, [c[0] for c in claims], type_=ARRAY(String))),
            func.unnest(bindparam(None, [c[1] for c in claims], type_=ARRAY(Integer))),
        )
        return tuple_(q.id, q.attempts).in_(pairs)
    return tuple_(q.id, q.attempts).in_([tuple(c) for c in claims])


def claimed_values(q: LeasedQueue, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """What a claim writes: the leased status under a lease, one more attempt."""
    return {
        "status": q.leased_status,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "attempts": q.attempts + 1,
        "updated_at": now,
    }


async def claim_ids(
    session: AsyncSession,
    q: LeasedQueue,
    client_id: str,
    ids: Sequence[str],
    *,
    now: datetime,
    lease_seconds: float,
) -> list[Any]:
    """Claim those of `ids` that are claimable, in one UPDATE; the claimed rows by id.

    Ids not due, held elsewhere or of another client are absent from the result (a
    duplicate doorbell costs one query that takes nothing).
    """
    if not ids:
        return []
    dialect = session.get_bind().dialect.name
    stmt = (
        update(q.model)
        .where(q.client_id == client_id, ids_in(q, ids, dialect), claimable(q, now))
        .values(claimed_values(q, now, lease_seconds))
        .returning(q.model)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    rows = list((await session.execute(stmt)).scalars().all())
    return sorted(rows, key=lambda row: str(row.id))


async def claim_due(
    session: AsyncSession,
    q: LeasedQueue,
    *,
    now: datetime,
    lease_seconds: float,
    limit: int,
    client_id: str | None = None,
) -> list[Any]:
    """Claim up to `limit` claimable rows, oldest due first (of `client_id`, or of every
    client when None); the claimed rows by id. Concurrent callers get disjoint rows."""
    if limit <= 0:
        return []
    pick = select(q.id).where(claimable(q, now))
    if client_id is not None:
        pick = pick.where(q.client_id == client_id)
    pick = pick.order_by(q.next_attempt_at, q.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # In a CTE, evaluated once: as a plain `IN (subquery)` the planner may rescan the
        # LIMITed, SKIP LOCKED subquery and claim more than `limit` rows.
        picked = pick.with_for_update(skip_locked=True).cte("picked")
        chosen = select(picked.c.id)
    else:
        chosen = pick
    stmt = (
        update(q.model)
        # The outer re-check costs nothing and keeps the claim correct whatever the plan.
        .where(q.id.in_(chosen), claimable(q, now))
        .values(claimed_values(q, now, lease_seconds))
        .returning(q.model)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    rows = list((await session.execute(stmt)).scalars().all())
    return sorted(rows, key=lambda row: str(row.id))


async def finish_many(
    session: AsyncSession,
    q: LeasedQueue,
    client_id: str,
    claims: Sequence[tuple[str, int]],
    *,
    from_statuses: Sequence[str],
    values: dict[str, Any],
) -> set[str]:
    """Write `values` (and release the lease) on each (id, attempts) claim still ours, in
    one UPDATE; the ids finished."""
    if not claims:
        return set()
    dialect = session.get_bind().dialect.name
    result = await session.execute(
        update(q.model)
        .where(
            q.client_id == client_id,
            # The plain IN lets the primary key index find the rows; the pair IN fences.
            ids_in(q, sorted({c[0] for c in claims}), dialect),
            claims_in(q, claims, dialect),
            q.status.in_(from_statuses),
        )
        .values(lease_until=None, **values)
        .returning(q.id)
        .execution_options(synchronize_session=False)
    )
    return {str(i) for i in result.scalars().all()}


async def finish_one(
    session: AsyncSession,
    q: LeasedQueue,
    client_id: str,
    row_id: str,
    *,
    attempts: int | None,
    from_statuses: Sequence[str],
    values: dict[str, Any],
) -> bool:
    """`finish_many` for one row; `attempts=None` finishes it whichever claim holds it (an
    operator's or a policy's decision, not a worker's result). False: not ours to finish."""
    conditions = [q.client_id == client_id, q.id == row_id, q.status.in_(from_statuses)]
    if attempts is not None:
        conditions.append(q.attempts == attempts)
    result = await session.execute(
        update(q.model)
        .where(*conditions)
        .values(lease_until=None, **values)
        .returning(q.id)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None
