"""Statements of the settle-on-claim path (app/notifications/settle.py): deliveries whose
channel needs nothing but the row to deliver (in-app: the inbox item exists) go from due to
`delivered` in one UPDATE, with no lease in between."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

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


def _settleable(
    client_id: str, ids: Sequence[str], channels: Sequence[str], dialect: str
) -> list[object]:
    return [
        col(Delivery.client_id) == client_id,
        engine.ids_in(QUEUE, ids, dialect),
        col(Delivery.channel).in_(list(channels)),
        col(Delivery.recipient_user_id).is_not(None),
    ]


async def lock_notifications(
    session: AsyncSession, client_id: str, ids: Sequence[str], channels: Sequence[str]
) -> dict[str, Notification]:
    """The notifications of those of `ids` through `channels` with a recipient user, their
    rows locked in id order (as every finisher takes them, so that cancels and finishers
    queue rather than deadlock), by id; one statement, before the deliveries' rows."""
    dialect = session.get_bind().dialect.name
    theirs = select(col(Delivery.notification_id)).where(
        *_settleable(client_id, ids, channels, dialect)  # type: ignore[arg-type]
    )
    query = (
        select(Notification)
        .where(col(Notification.client_id) == client_id, col(Notification.id).in_(theirs))
        .order_by(col(Notification.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {n.id: n for n in (await session.execute(query)).scalars().all()}


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
    dialect = session.get_bind().dialect.name
    stmt = (
        update(Delivery)
        .where(
            *_settleable(client_id, ids, channels, dialect),  # type: ignore[arg-type]
            engine.claimable(QUEUE, now),
            col(Delivery.attempts) < attempt_limit,
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
    rows = (await session.execute(stmt)).all()
    return sorted((Settled(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows), key=_by_id)


def _by_id(s: Settled) -> str:
    return s.id
