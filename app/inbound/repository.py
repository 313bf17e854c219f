"""Queries on inbound hooks, their events and room keys — always scoped by client id.

Events are a leased-work queue on the same engine as the relay's deliveries (app/leasing):
a task claims rows with one atomic UPDATE … RETURNING under a lease, finishes each fenced
by the attempt it claimed, and the beat sweep re-rings due rows (retries included) and
expired leases. The sweep queries are the only cross-tenant ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.inbound.models import (
    FAILED,
    PENDING,
    PROCESSED,
    PROCESSING,
    InboundEvent,
    InboundWebhook,
)
from app.leasing import repository as engine
from app.leasing import sweep as leased
from app.leasing.queue import LeasedQueue
from app.leasing.sweep import Due
from app.tenants.models import Client

# Fields a PATCH may change; the name (the URL) and secrets do not change this way.
UPDATABLE = frozenset({"action", "config", "scheme", "signature", "disabled"})
MAX_ERROR_CHARS = 2000


# The events as a leased-work queue (app/leasing): due when pending, leased while processing.
QUEUE = LeasedQueue(InboundEvent, due_statuses=(PENDING,), leased_status=PROCESSING)

# An event the sweep should ring the doorbell for; `at` + `id` is the page cursor.
DueEvent = Due


# --- hooks -------------------------------------------------------------------------------


async def add_hook(session: AsyncSession, client_id: str, hook: InboundWebhook) -> None:
    """Insert a new hook of the client (IntegrityError when the name is taken)."""
    if hook.client_id != client_id:
        raise ValueError("hook belongs to another client")
    session.add(hook)
    await session.flush()


async def get_hook(session: AsyncSession, client_id: str, hook_id: str) -> InboundWebhook | None:
    """One hook of the client."""
    query = select(InboundWebhook).where(
        col(InboundWebhook.client_id) == client_id, col(InboundWebhook.id) == hook_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def hook_by_url(session: AsyncSession, client_slug: str, name: str) -> InboundWebhook | None:
    """The hook at the public URL /webhooks/{client_slug}/{name}: the client is the one
    with that slug (one query for both, as ingestion needs on every request)."""
    query = (
        select(InboundWebhook)
        .join(Client, col(Client.id) == col(InboundWebhook.client_id))
        .where(col(Client.slug) == client_slug, col(InboundWebhook.name) == name)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_hooks(
    session: AsyncSession, client_id: str, *, limit: int, after: str | None = None
) -> list[InboundWebhook]:
    """`limit + 1` hooks by id after the cursor."""
    query = select(InboundWebhook).where(col(InboundWebhook.client_id) == client_id)
    if after:
        query = query.where(col(InboundWebhook.id) > after)
    query = query.order_by(col(InboundWebhook.id)).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


async def update_hook(
    session: AsyncSession, client_id: str, hook_id: str, *, now: datetime, **values: Any
) -> InboundWebhook | None:
    """Change PATCH-able fields; the updated hook, or None if not found."""
    unknown = set(values) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return await _update_hook(session, client_id, hook_id, {**values, "updated_at": now})


async def _update_hook(
    session: AsyncSession, client_id: str, hook_id: str, values: dict[str, Any]
) -> InboundWebhook | None:
    stmt = (
        update(InboundWebhook)
        .where(col(InboundWebhook.client_id) == client_id, col(InboundWebhook.id) == hook_id)
        .values(**values)
        .returning(InboundWebhook)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def rotate_secret(
    session: AsyncSession,
    client_id: str,
    hook_id: str,
    *,
    new_secret_sealed: str,
    previous_valid_until: datetime,
    now: datetime,
) -> InboundWebhook | None:
    """Install a new secret; the current one still verifies until `previous_valid_until`."""
    return await _update_hook(
        session,
        client_id,
        hook_id,
        {
            "previous_secret_sealed": col(InboundWebhook.secret_sealed),
            "previous_secret_expires_at": previous_valid_until,
            "secret_sealed": new_secret_sealed,
            "updated_at": now,
        },
    )


async def delete_hook(session: AsyncSession, client_id: str, hook_id: str) -> bool:
    """Delete a hook (its events and room keys go with it); False when there was none."""
    result = await session.execute(
        delete(InboundWebhook)
        .where(col(InboundWebhook.client_id) == client_id, col(InboundWebhook.id) == hook_id)
        .returning(col(InboundWebhook.id))
    )
    return result.scalar_one_or_none() is not None


# --- events ------------------------------------------------------------------------------


async def insert_event(session: AsyncSession, client_id: str, event: InboundEvent) -> bool:
    """Insert the event unless the hook already has one with its dedupe key; True if new.

    `ON CONFLICT DO NOTHING` on the (hook_id, dedupe_key) constraint: on PostgreSQL a
    concurrent insert of the same key waits for the first to commit and then does nothing,
    so exactly one of two simultaneous deliveries is stored, without an error.
    """
    if event.client_id != client_id:
        raise ValueError("event belongs to another client")
    values = {c.name: getattr(event, c.key) for c in InboundEvent.__table__.columns}  # type: ignore[attr-defined]
    stmt = (
        dialect_insert(session, InboundEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["hook_id", "dedupe_key"])
        .returning(col(InboundEvent.id))
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def event_by_dedupe_key(
    session: AsyncSession, client_id: str, hook_id: str, dedupe_key: str
) -> InboundEvent | None:
    """The hook's event with `dedupe_key`."""
    query = select(InboundEvent).where(
        col(InboundEvent.client_id) == client_id,
        col(InboundEvent.hook_id) == hook_id,
        col(InboundEvent.dedupe_key) == dedupe_key,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get_event(
    session: AsyncSession, client_id: str, event_id: str, hook_id: str | None = None
) -> InboundEvent | None:
    """One event of the client (of `hook_id`, when given)."""
    query = select(InboundEvent).where(
        col(InboundEvent.client_id) == client_id, col(InboundEvent.id) == event_id
    )
    if hook_id is not None:
        query = query.where(col(InboundEvent.hook_id) == hook_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_events(
    session: AsyncSession,
    client_id: str,
    hook_id: str,
    *,
    limit: int,
    before: str | None = None,
    status: str | None = None,
) -> list[InboundEvent]:
    """`limit + 1` events of the hook, newest first, before the cursor."""
    query = select(InboundEvent).where(
        col(InboundEvent.client_id) == client_id, col(InboundEvent.hook_id) == hook_id
    )
    if before:
        query = query.where(col(InboundEvent.id) < before)
    if status:
        query = query.where(col(InboundEvent.status) == status)
    query = query.order_by(col(InboundEvent.id).desc()).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


async def claim(
    session: AsyncSession, client_id: str, event_id: str, *, now: datetime, lease_seconds: float
) -> InboundEvent | None:
    """Take the event for one attempt, or None if it is not due or someone holds it."""
    rows = await claim_many(session, client_id, [event_id], now=now, lease_seconds=lease_seconds)
    return rows[0] if rows else None


async def claim_many(
    session: AsyncSession,
    client_id: str,
    event_ids: Sequence[str],
    *,
    now: datetime,
    lease_seconds: float,
) -> list[InboundEvent]:
    """Claim those of the events that are claimable, in one UPDATE; the claimed rows."""
    return await engine.claim_ids(
        session, QUEUE, client_id, event_ids, now=now, lease_seconds=lease_seconds
    )


async def claim_due(
    session: AsyncSession, client_id: str, *, now: datetime, lease_seconds: float, limit: int
) -> list[InboundEvent]:
    """Claim up to `limit` of the client's due events, oldest first; concurrent callers get
    disjoint rows."""
    return await engine.claim_due(
        session, QUEUE, now=now, lease_seconds=lease_seconds, limit=limit, client_id=client_id
    )


async def _finish(
    session: AsyncSession, client_id: str, event_id: str, attempts: int, values: dict[str, Any]
) -> bool:
    # Fenced: only the claim that made attempt `attempts` may finish the row.
    return await engine.finish_one(
        session,
        QUEUE,
        client_id,
        event_id,
        attempts=attempts,
        from_statuses=(PROCESSING,),
        values=values,
    )


async def mark_processed(
    session: AsyncSession,
    client_id: str,
    event_id: str,
    *,
    attempts: int,
    outcome: dict[str, Any],
    now: datetime,
) -> bool:
    """`processing` → `processed` with what the action did."""
    values = {"status": PROCESSED, "outcome": outcome, "error": None}
    return await _finish(
        session, client_id, event_id, attempts, {**values, "processed_at": now, "updated_at": now}
    )


async def mark_failed(
    session: AsyncSession,
    client_id: str,
    event_id: str,
    *,
    attempts: int,
    error: str,
    now: datetime,
) -> bool:
    """`processing` → `failed` with the reason (no further attempts)."""
    values = {"status": FAILED, "error": error[:MAX_ERROR_CHARS], "outcome": None}
    return await _finish(
        session, client_id, event_id, attempts, {**values, "processed_at": now, "updated_at": now}
    )


async def mark_retrying(
    session: AsyncSession,
    client_id: str,
    event_id: str,
    *,
    attempts: int,
    error: str,
    next_attempt_at: datetime,
    now: datetime,
) -> bool:
    """`processing` → `pending`, due again at `next_attempt_at`."""
    values = {
        "status": PENDING,
        "error": error[:MAX_ERROR_CHARS],
        "next_attempt_at": next_attempt_at,
        "updated_at": now,
    }
    return await _finish(session, client_id, event_id, attempts, values)


async def requeue(
    session: AsyncSession, client_id: str, hook_id: str, event_id: str, *, now: datetime
) -> InboundEvent | None:
    """Make a finished event due now with a fresh attempt budget and a new generation.

    An event still pending or processing is left alone (None): it will be processed anyway.
    """
    stmt = (
        update(InboundEvent)
        .where(
            col(InboundEvent.client_id) == client_id,
            col(InboundEvent.hook_id) == hook_id,
            col(InboundEvent.id) == event_id,
            col(InboundEvent.status).in_((PROCESSED, FAILED)),
        )
        .values(
            status=PENDING,
            attempts=0,
            generation=col(InboundEvent.generation) + 1,
            next_attempt_at=now,
            lease_until=None,
            updated_at=now,
        )
        .returning(InboundEvent)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def due_events(
    session: AsyncSession, *, now: datetime, limit: int, after: tuple[datetime, str] | None = None
) -> list[DueEvent]:
    """Pending events due by `now`, oldest first (all clients: the beat sweep)."""
    return await leased.due(session, QUEUE, now=now, limit=limit, after=after)


async def expired_leases(
    session: AsyncSession, *, now: datetime, limit: int, after: tuple[datetime, str] | None = None
) -> list[DueEvent]:
    """`processing` events whose lease ended before `now` (all clients: the beat sweep)."""
    return await leased.expired_leases(session, QUEUE, now=now, limit=limit, after=after)


async def sweep(
    session: AsyncSession, *, now: datetime, page: int, max_rows: int
) -> list[DueEvent]:
    """Due events then expired leases, up to `max_rows` of each (all clients)."""
    return await leased.sweep(session, QUEUE, now=now, page=page, max_rows=max_rows)
