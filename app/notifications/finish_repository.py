"""The finisher's batched writes: what one write of many delivery results needs in a few
statements instead of a few per delivery (app/notifications/delivery.py, `_Finisher`).

Each function does for a batch exactly what its one-row counterpart does for one row
(delivery_repository.mark_delivered, repository.lock / get / refresh_status), so a batch
of one and a batch of a hundred leave the same rows behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.native_sql import insert_rows
from app.leasing import repository as engine
from app.notifications.delivery_repository import QUEUE
from app.notifications.models import (
    DELIVERED,
    MAX_REPLY_BYTES,
    SENDING,
    DeliveryAttempt,
    Notification,
)
from app.notifications.repository import delivery_status_counts, derive_status

_ATTEMPTS: Table = DeliveryAttempt.__table__  # type: ignore[attr-defined]


async def insert_attempts(
    session: AsyncSession, client_id: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Store attempt rows (column → value, as `delivery_attempts` has them; every row names
    the same columns) in one executemany, replies cut to 4 KB like
    `delivery_repository.record_attempt`; plain rows rather than DeliveryAttempt models,
    whose validation cost more than the insert."""
    if not rows:
        return
    for row in rows:
        if row["client_id"] != client_id:
            raise ValueError("attempt belongs to another client")
        if row.get("reply"):
            row["reply"] = row["reply"].encode()[:MAX_REPLY_BYTES].decode(errors="ignore")
    await insert_rows(session, _ATTEMPTS, rows)


async def get_many(
    session: AsyncSession, client_id: str, notification_ids: Iterable[str]
) -> dict[str, Notification]:
    """The client's notifications among `notification_ids`, by id (one query)."""
    ids = sorted(set(notification_ids))
    if not ids:
        return {}
    query = select(Notification).where(
        col(Notification.client_id) == client_id, col(Notification.id).in_(ids)
    )
    return {n.id: n for n in (await session.execute(query)).scalars().all()}


async def lock_many(
    session: AsyncSession, client_id: str, notification_ids: Iterable[str]
) -> dict[str, Notification]:
    """The notifications, their rows locked until the transaction ends, in id order (one
    statement; PostgreSQL locks the rows as the sorted scan returns them, the same order
    one-by-one `repository.lock` calls over sorted ids took, so cancel, retry and other
    finishers still queue rather than deadlock). Deleted ones are absent."""
    ids = sorted(set(notification_ids))
    if not ids:
        return {}
    query = (
        select(Notification)
        .where(col(Notification.client_id) == client_id, col(Notification.id).in_(ids))
        .order_by(col(Notification.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {n.id: n for n in (await session.execute(query)).scalars().all()}


async def mark_delivered_many(
    session: AsyncSession,
    client_id: str,
    claims: Sequence[tuple[str, int]],
    *,
    now: datetime,
) -> set[str]:
    """`sending` → `delivered` for each (delivery id, attempts) claim in one UPDATE, each
    row fenced on its own claim like `mark_delivered(..., attempts=)` (the leased-work
    engine's `finish_many`); the ids finished."""
    return await engine.finish_many(
        session,
        QUEUE,
        client_id,
        claims,
        from_statuses=(SENDING,),
        values={"status": DELIVERED, "delivered_at": now, "updated_at": now, "last_error": None},
    )


async def refresh_statuses(
    session: AsyncSession,
    client_id: str,
    notifications: Iterable[Notification],
    *,
    now: datetime,
) -> dict[str, str]:
    """`repository.refresh_status` for several notifications already read (locked) in this
    transaction: one GROUP BY for their deliveries, one UPDATE per status that changed;
    each notification's new status, by id."""
    rows = list(notifications)
    if not rows:
        return {}
    counts = await delivery_status_counts(session, client_id, [n.id for n in rows])
    changed: dict[str, list[str]] = defaultdict(list)
    out: dict[str, str] = {}
    for notification in rows:
        status = derive_status(counts[notification.id], scheduled=notification.send_at > now)
        out[notification.id] = status
        if status != notification.status:
            changed[status].append(notification.id)
            notification.status = status
    for status, ids in sorted(changed.items()):
        await session.execute(
            update(Notification)
            .where(col(Notification.client_id) == client_id, col(Notification.id).in_(ids))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
    return out
