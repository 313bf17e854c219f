"""Owed in-app pushes: delivered websocket-channel rows whose `notification` event has not
yet gone to live connections (`pushed_at` NULL; models.PUSH_OWED).

Every query here walks one of the two partial indexes on that predicate, which hold only
owed pushes: ix_deliveries_push_owed (a user's, on connect) and ix_deliveries_push_sweep
(by age, for the sweep). Scoped by client id, except the sweep's reads (all clients).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.core.native_sql import session_query
from app.core.types import sqlite_time
from app.notifications.models import DELIVERED, WEBSOCKET, Delivery, Notification


@dataclass(frozen=True, slots=True)
class OwedPush:
    """One in-app delivery to push: its id is also its inbox item's id."""

    delivery_id: str
    client_id: str
    user_id: str
    notification_id: str
    delivered_at: datetime | None = None


def _owed() -> ColumnElement[bool]:
    # The partial indexes' predicate, spelled the same so the planner uses them.
    return and_(
        col(Delivery.channel) == WEBSOCKET,
        col(Delivery.status) == DELIVERED,
        col(Delivery.pushed_at).is_(None),
    )


_COLUMNS = (
    col(Delivery.id),
    col(Delivery.client_id),
    col(Delivery.recipient_user_id),
    col(Delivery.notification_id),
    col(Delivery.delivered_at),
)


def _rows(result: Iterable[Any]) -> list[OwedPush]:
    return [OwedPush(r[0], r[1], r[2], r[3], r[4]) for r in result if r[2] is not None]


async def owed_for_user(
    session: AsyncSession | AsyncConnection,
    client_id: str,
    user_id: str,
    *,
    limit: int,
    after: str | None = None,
) -> list[OwedPush]:
    """The user's owed pushes, oldest first (by id), after the cursor id."""
    query = select(*_COLUMNS).where(
        _owed(),
        col(Delivery.client_id) == client_id,
        col(Delivery.recipient_user_id) == user_id,
    )
    if after is not None:
        query = query.where(col(Delivery.id) > after)
    query = query.order_by(col(Delivery.id)).limit(limit)
    return _rows((await session.execute(query)).all())


async def owed_between(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[OwedPush]:
    """Owed pushes (all clients) delivered in [since, until), by (delivered_at, id) after
    the cursor: the sweep's backstop for a fast path that did not finish."""
    query = select(*_COLUMNS).where(
        _owed(), col(Delivery.delivered_at) >= since, col(Delivery.delivered_at) < until
    )
    if after is not None:
        at, last_id = after
        query = query.where(
            (col(Delivery.delivered_at) > at)
            | ((col(Delivery.delivered_at) == at) & (col(Delivery.id) > last_id))
        )
    query = query.order_by(col(Delivery.delivered_at), col(Delivery.id)).limit(limit)
    return _rows((await session.execute(query)).all())


async def contents(
    session: AsyncSession, notification_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Each notification's websocket content (stored once on its row), by id."""
    ids = sorted(set(notification_ids))
    if not ids:
        return {}
    query = select(col(Notification.id), col(Notification.content)).where(
        col(Notification.id).in_(ids)
    )
    return {r[0]: (r[1] or {}).get(WEBSOCKET, {}) for r in (await session.execute(query)).all()}


async def mark_pushed(session: AsyncSession, delivery_ids: Sequence[str], *, now: datetime) -> int:
    """Record that these in-app deliveries were pushed (one statement); how many were owed."""
    if not delivery_ids:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Driver SQL (on the send's hot connection when `autocommit` gave one): every live
        # push ends here, and the ORM's bulk update compiled it anew each time.
        rows = await session_query(session)(_MARK_PUSHED_PG, [now, list(delivery_ids)])
        return len(rows)
    if dialect == "sqlite" and len(delivery_ids) <= _SQLITE_MARK_CHUNK:
        marks = ", ".join("?" for _ in delivery_ids)
        rows = await session_query(session)(
            _MARK_PUSHED_SQLITE.format(marks=marks), [sqlite_time(now), *delivery_ids]
        )
        return len(rows)
    result = await session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(list(delivery_ids)), _owed())
        .values(pushed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


_MARK_PUSHED_PG = (
    "UPDATE deliveries SET pushed_at = $1 WHERE id = ANY($2::varchar[]) "
    f"AND channel = '{WEBSOCKET}' AND status = '{DELIVERED}' AND pushed_at IS NULL RETURNING 1"
)


# SQLite's default limit is 32,766 variables per statement; a push chunk is 1,000.
_SQLITE_MARK_CHUNK = 1000
_MARK_PUSHED_SQLITE = (
    "UPDATE deliveries SET pushed_at = ? WHERE id IN ({marks}) "
    f"AND channel = '{WEBSOCKET}' AND status = '{DELIVERED}' AND pushed_at IS NULL RETURNING 1"
)


async def give_up_before(
    session: AsyncSession, *, before: datetime, now: datetime, limit: int
) -> int:
    """Stop owing the push of up to `limit` in-app deliveries delivered before `before`
    (all clients): the user never connected; the inbox still holds the item. How many."""
    ids = (
        select(col(Delivery.id))
        .where(_owed(), col(Delivery.delivered_at) < before)
        .order_by(col(Delivery.delivered_at))
        .limit(limit)
    )
    result = await session.execute(
        update(Delivery)
        .where(col(Delivery.id).in_(ids.scalar_subquery()), _owed())
        .values(pushed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
