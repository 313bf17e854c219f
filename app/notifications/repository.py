"""Queries on notifications, their idempotency records and their status; scoped by client id.

The per-delivery work queue (claim, finish, sweeps) is in `delivery_repository`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, exists, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.ids import new_ids
from app.core.native_sql import insert_rows, session_query
from app.inbox import repository as inbox_repository
from app.inbox.repository import InboxContent
from app.notifications import idempotency_repository as idempotency
from app.notifications.create_statement import CREATE_KEYED_PG, CREATE_PG, create_pg_args
from app.notifications.idempotency_repository import IDEMPOTENCY_TTL_SECONDS
from app.notifications.initial_status import initial_statuses
from app.notifications.models import (
    ACTIVE_STATUSES,
    BOUNCED,
    CANCELED,
    COMPLAINED,
    DELIVERED,
    FAILED,
    PENDING,
    SKIPPED,
    Delivery,
    Notification,
)

# Rows per INSERT statement of a fan-out: large enough to amortise round trips, small
# enough to stay under driver parameter limits (asyncpg: 32,767 per statement).
INSERT_CHUNK = 1000
# The Core table: bulk inserts bypass the ORM (no objects, no identity map).
_DELIVERIES: Table = Delivery.__table__  # type: ignore[attr-defined]
_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[attr-defined]
# (attribute, column name) of every mapped column: `metadata_` is stored as `metadata`.
_NOTIFICATION_COLUMNS = [
    (attr.key, attr.columns[0].name) for attr in sa_inspect(Notification).column_attrs
]


@dataclass(slots=True)
class NewNotification:
    """A notification to create, as `create_notification` reads it: a `Notification`'s
    columns without the model (building the SQLModel row validated and instrumented it,
    a tenth of a send's CPU, for attributes only read)."""

    id: str
    client_id: str
    status: str
    channels: list[str]
    content: dict[str, Any]
    metadata_: dict[str, Any]
    critical: bool
    send_at: datetime
    created_at: datetime
    idempotency_key: str | None
    request_hash: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to create: one channel and one resolved recipient."""

    channel: str
    recipient: dict[str, Any]
    recipient_user_id: str | None = None
    endpoint_id: str | None = None
    # Set: the delivery is stored `skipped` with this reason (nothing will be sent).
    skip_reason: str | None = None
    # Its channel stores an inbox item per delivery (`Channel.stores_inbox_item`).
    inbox_item: bool = False


async def create_notification(
    session: AsyncSession,
    client_id: str,
    notification: Notification | NewNotification,
    deliveries: Sequence[NewDelivery],
    *,
    now: datetime,
    inbox: InboxContent | None = None,
    idempotency_ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
    statuses: Sequence[str] | None = None,
) -> list[str] | None:
    """Store the notification, its deliveries, its inbox items and its idempotency record;
    the delivery ids (in the order of `deliveries`).

    With `inbox`, every delivery marked `inbox_item` that will be sent (not skipped, to a
    user) is also an inbox item (id = the delivery's id, which the `notification` event carries): it
    exists whether the user is online or not. The items hold no copy of the content: they
    show the notification's websocket data, stored once in its row.

    Runs inside the caller's transaction, or on PostgreSQL as one statement that needs
    none (with an idempotency key its reservation gates every insert of the statement). Returns None when `notification.idempotency_key` is
    held by a live record (a concurrent or earlier send): the caller rolls back and answers
    with `idempotency_repository.find`. A delivery starts `pending`, due at `send_at`, or
    `skipped`, or — in-app with an inbox item, not scheduled — `delivered` at `now`
    (`initial_status`; `statuses` when the caller computed them already), its push owed
    (`pushed_at` NULL).
    """
    if notification.client_id != client_id:
        raise ValueError("notification belongs to another client")
    ids = new_ids(len(deliveries))
    if statuses is None:
        statuses = initial_statuses(deliveries, inbox is not None, notification.send_at > now)
    items = [
        (delivery_id, d.recipient_user_id)
        for delivery_id, d in zip(ids, deliveries, strict=True)
        if d.inbox_item and d.skip_reason is None and d.recipient_user_id is not None
    ]
    if inbox is None:
        items = []
    if session.get_bind().dialect.name == "postgresql":
        # Notification, deliveries and inbox items in one statement: one round trip
        # instead of three (the send's hot path).
        args = create_pg_args(notification, ids, deliveries, statuses, inbox, items, now)
        if notification.idempotency_key is None:
            await session_query(session)(CREATE_PG, args)
            return ids
        # The key's reservation in the same statement, gating every insert: a live record
        # holding the key means nothing is written (no transaction to roll back).
        args += [now + timedelta(seconds=idempotency_ttl_seconds)]
        rows = await session_query(session)(CREATE_KEYED_PG, args)
        return ids if rows and rows[0][0] else None
    else:
        # A Core INSERT, not session.add + flush: the unit of work costs more than the
        # statement, and nothing later in the request needs the object to be persistent.
        await insert_rows(
            session,
            _NOTIFICATIONS,
            [{column: getattr(notification, key) for key, column in _NOTIFICATION_COLUMNS}],
        )
        await insert_deliveries(
            session,
            client_id,
            notification.id,
            deliveries,
            due_at=notification.send_at,
            now=now,
            ids=ids,
            statuses=statuses,
        )
        if inbox is not None and items:
            await inbox_repository.add_items(
                session,
                client_id,
                notification.id,
                items,
                event=inbox.event,
                visible_at=inbox.visible_at,
            )
    if notification.idempotency_key is not None:
        reserved = await idempotency.reserve(
            session,
            client_id,
            notification.idempotency_key,
            request_hash=notification.request_hash or "",
            notification_id=notification.id,
            now=now,
            ttl_seconds=idempotency_ttl_seconds,
        )
        if not reserved:
            return None
    return ids


async def insert_deliveries(
    session: AsyncSession,
    client_id: str,
    notification_id: str,
    deliveries: Sequence[NewDelivery],
    *,
    due_at: datetime,
    now: datetime,
    chunk_size: int = INSERT_CHUNK,
    ids: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
) -> list[str]:
    """Bulk-insert deliveries in chunks (Core executemany, no ORM objects); their ids
    (`ids`, or new ones). Each is `statuses[i]` (default: pending, or skipped)."""
    given = list(ids) if ids is not None else new_ids(len(deliveries))
    initial = (
        list(statuses)
        if statuses is not None
        else [SKIPPED if d.skip_reason else PENDING for d in deliveries]
    )
    ids = []
    for start in range(0, len(deliveries), chunk_size):
        rows: list[dict[str, Any]] = []
        for item, delivery_id, status in zip(
            deliveries[start : start + chunk_size],
            given[start : start + chunk_size],
            initial[start : start + chunk_size],
            strict=True,
        ):
            ids.append(delivery_id)
            rows.append(
                {
                    "id": delivery_id,
                    "client_id": client_id,
                    "notification_id": notification_id,
                    "channel": item.channel,
                    "recipient": item.recipient,
                    "recipient_user_id": item.recipient_user_id,
                    "endpoint_id": item.endpoint_id,
                    "status": status,
                    "attempts": 0,
                    "next_attempt_at": due_at if status == PENDING else None,
                    "lease_until": None,
                    "last_error": None,
                    "delivered_at": now if status == DELIVERED else None,
                    "skip_reason": item.skip_reason,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await insert_rows(session, _DELIVERIES, rows)
    return ids


async def get(session: AsyncSession, client_id: str, notification_id: str) -> Notification | None:
    """One notification of the client."""
    query = select(Notification).where(
        col(Notification.client_id) == client_id, col(Notification.id) == notification_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def lock(session: AsyncSession, client_id: str, notification_id: str) -> Notification | None:
    """The notification, its row locked until the transaction ends (PostgreSQL; SQLite's
    write transactions are serialised already): status refreshes of one notification from
    several workers then run one after the other and the last one counts every commit."""
    query = (
        select(Notification)
        .where(col(Notification.client_id) == client_id, col(Notification.id) == notification_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get_with_deliveries(
    session: AsyncSession, client_id: str, notification_id: str
) -> tuple[Notification, list[Delivery]] | None:
    """A notification and its deliveries (in creation order)."""
    notification = await get(session, client_id, notification_id)
    if notification is None:
        return None
    query = (
        select(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.notification_id) == notification_id,
        )
        .order_by(col(Delivery.id))
    )
    return notification, list((await session.execute(query)).scalars().all())


async def list_page(
    session: AsyncSession,
    client_id: str,
    *,
    limit: int,
    after: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[Notification]:
    """`limit + 1` notifications, newest first, older than the cursor id, filtered.

    The channel filter asks whether a delivery of that channel exists (index
    ix_deliveries_notification), which works alike on both databases where JSON
    containment on `channels` would not.
    """
    query = select(Notification).where(col(Notification.client_id) == client_id)
    if after:
        query = query.where(col(Notification.id) < after)
    if status is not None:
        query = query.where(col(Notification.status) == status)
    if created_after is not None:
        query = query.where(col(Notification.created_at) >= created_after)
    if created_before is not None:
        query = query.where(col(Notification.created_at) < created_before)
    if channel is not None:
        query = query.where(
            exists().where(
                col(Delivery.notification_id) == col(Notification.id),
                col(Delivery.channel) == channel,
            )
        )
    query = query.order_by(col(Notification.id).desc()).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


def derive_status(counts: Mapping[str, int], *, scheduled: bool) -> str:
    """A notification's status from how many of its deliveries are in each status.

    While work is owed (pending, sending, retrying): `scheduled` if its `send_at` is
    still ahead, else `pending`. Once every delivery is final: `delivered` when none
    failed or was canceled (skipped ones were not owed), `canceled` when none was
    delivered or failed, `failed` when some failed and none was delivered, `partial`
    when some were delivered and others failed or were canceled. No deliveries at all:
    nothing is owed, so `delivered`. A provider's later word counts too: `bounced` as
    failed (it never arrived), `complained` as delivered (it arrived, and was unwanted).
    """
    if any(counts.get(status, 0) for status in ACTIVE_STATUSES):
        return "scheduled" if scheduled else PENDING
    delivered = counts.get(DELIVERED, 0) + counts.get(COMPLAINED, 0)
    failed = counts.get(FAILED, 0) + counts.get(BOUNCED, 0)
    canceled = counts.get(CANCELED, 0)
    if not failed and not canceled:
        return DELIVERED
    if not delivered:
        return FAILED if failed else CANCELED
    return "partial"


async def delivery_status_counts(
    session: AsyncSession, client_id: str, notification_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per notification, how many deliveries are in each status (one GROUP BY)."""
    out: dict[str, dict[str, int]] = {nid: {} for nid in notification_ids}
    if not notification_ids:
        return out
    query = (
        select(col(Delivery.notification_id), col(Delivery.status), func.count())
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.notification_id).in_(notification_ids),
        )
        .group_by(col(Delivery.notification_id), col(Delivery.status))
    )
    for notification_id, status, count in (await session.execute(query)).all():
        out[notification_id][status] = int(count)
    return out


async def refresh_status(
    session: AsyncSession, client_id: str, notification_id: str, *, now: datetime
) -> str | None:
    """Recompute and store the notification's status from its deliveries; the status.

    Counting walks ix_deliveries_notification; callers run it when a delivery reaches a
    final status rather than on every transition.
    """
    notification = await get(session, client_id, notification_id)
    if notification is None:
        return None
    counts = (await delivery_status_counts(session, client_id, [notification_id]))[notification_id]
    status = derive_status(counts, scheduled=notification.send_at > now)
    if status != notification.status:
        await session.execute(
            update(Notification)
            .where(
                col(Notification.client_id) == client_id,
                col(Notification.id) == notification_id,
            )
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
        notification.status = status
    return status
