"""Statements of the settle-on-claim path (app/notifications/settle.py): deliveries whose
channel needs nothing but the row to deliver (in-app: the inbox item exists) go from due to
`delivered` in one UPDATE, with no lease in between.

Both statements are built once per dialect with named parameters (the ids and channels as
one array each on PostgreSQL): a task message pays for binding its values only, not for
building and coercing the expression again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.types import UTCDateTime
from app.leasing import repository as engine
from app.notifications.delivery_repository import QUEUE
from app.notifications.models import DELIVERED, Delivery, Notification


@dataclass(frozen=True, slots=True)
class Settled:
    """A delivery settled by its claim."""

    id: str
    notification_id: str
    user_id: str
    channel: str


def _one_of(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return column == func.any(bindparam(name, type_=ARRAY(String)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]


def _settleable(dialect: str) -> list[ColumnElement[bool]]:
    return [
        col(Delivery.client_id) == bindparam("p_client_id"),
        _one_of(col(Delivery.id), "p_ids", dialect),
        _one_of(col(Delivery.channel), "p_channels", dialect),
        col(Delivery.recipient_user_id).is_not(None),
    ]


def _lock_statement(dialect: str) -> Any:
    theirs = select(col(Delivery.notification_id)).where(*_settleable(dialect))
    return (
        select(Notification)
        .where(
            col(Notification.client_id) == bindparam("p_client_id"),
            col(Notification.id).in_(theirs),
        )
        .order_by(col(Notification.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _settle_statement(dialect: str) -> Any:
    now = bindparam("p_now", type_=UTCDateTime())
    return (
        update(Delivery)
        .where(
            *_settleable(dialect),
            engine.claimable(QUEUE, now),  # type: ignore[arg-type]
            col(Delivery.attempts) < bindparam("p_attempt_limit"),
        )
        .values(
            status=DELIVERED,
            attempts=col(Delivery.attempts) + 1,
            delivered_at=now,
            updated_at=now,
            lease_until=None,
            last_error=None,
        )
        .returning(
            col(Delivery.id),
            col(Delivery.notification_id),
            col(Delivery.recipient_user_id),
            col(Delivery.channel),
        )
        .execution_options(synchronize_session=False)
    )


def _any_statement(dialect: str) -> Any:
    return select(col(Delivery.id)).where(*_settleable(dialect)).limit(1)


_BUILDERS = {"any": _any_statement, "lock": _lock_statement, "settle": _settle_statement}
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(kind: str, dialect: str) -> Any:
    found = _STATEMENTS.get((kind, dialect))
    if found is None:
        found = _STATEMENTS[(kind, dialect)] = _BUILDERS[kind](dialect)
    return found


async def any_settleable(
    session: AsyncSession, client_id: str, ids: Sequence[str], channels: Sequence[str]
) -> bool:
    """Whether any of `ids` goes through `channels` to a user (due or not)."""
    stmt = _statement("any", session.get_bind().dialect.name)
    params = {"p_client_id": client_id, "p_ids": list(ids), "p_channels": list(channels)}
    return (await session.execute(stmt, params)).first() is not None


async def lock_notifications(
    session: AsyncSession, client_id: str, ids: Sequence[str], channels: Sequence[str]
) -> dict[str, Notification]:
    """The notifications of those of `ids` through `channels` with a recipient user, their
    rows locked in id order (as every finisher takes them, so that cancels and finishers
    queue rather than deadlock), by id; one statement, before the deliveries' rows."""
    stmt = _statement("lock", session.get_bind().dialect.name)
    params = {"p_client_id": client_id, "p_ids": list(ids), "p_channels": list(channels)}
    return {n.id: n for n in (await session.execute(stmt, params)).scalars().all()}


async def settle(
    session: AsyncSession,
    client_id: str,
    ids: Sequence[str],
    channels: Sequence[str],
    *,
    now: datetime,
    attempt_limit: int,
) -> list[Settled]:
    """Claimable deliveries among `ids` through `channels`, with a recipient user: made
    `delivered` now, their attempt counted, in one UPDATE; what was settled, by id. A row
    past `attempt_limit` is left to the general path (which fails it)."""
    if not ids:
        return []
    stmt = _statement("settle", session.get_bind().dialect.name)
    params = {
        "p_client_id": client_id,
        "p_ids": list(ids),
        "p_channels": list(channels),
        "p_now": now,
        "p_attempt_limit": attempt_limit,
    }
    rows = (await session.execute(stmt, params)).all()
    return sorted((Settled(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows), key=_by_id)


def _by_id(s: Settled) -> str:
    return s.id
