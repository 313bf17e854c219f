"""What a provider reports after it accepted a delivery (`delivered`): the address bounced,
its owner complained, or the provider gave up. The delivery moves from `delivered` to
`bounced`, `complained` or `failed` and its notification's status is refreshed (under the
notification's row lock, like every other refresh).

Only a `delivered` delivery moves: an event about one that is still being attempted (the
provider answered faster than our result was written) or already moved changes nothing;
the event itself is kept by the caller either way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.notifications import delivery_repository as deliveries
from app.notifications import repository
from app.notifications.models import BOUNCED, COMPLAINED, DELIVERED, FAILED, Delivery

# An event kind → the delivery status it leads to (`delivered` confirms: no move).
MOVES = {"bounced": BOUNCED, "complained": COMPLAINED, "failed": FAILED}
_MAX_ERROR = 1000


async def apply_event(
    session: AsyncSession,
    client_id: str,
    delivery_id: str,
    kind: str,
    *,
    channel: str,
    detail: str | None,
    now: datetime,
) -> str | None:
    """Move the client's delivered `channel` delivery as the event says; its new status, or
    None when nothing moved. The caller commits."""
    status = MOVES.get(kind)
    if status is None:
        return None
    row = await deliveries.get(session, client_id, delivery_id)
    if row is None or row.channel != channel or row.status != DELIVERED:
        return None
    # Lock order as everywhere: the notification first, then its delivery rows.
    if await repository.lock(session, client_id, row.notification_id) is None:
        return None
    moved = await session.execute(
        update(Delivery)
        .where(
            col(Delivery.client_id) == client_id,
            col(Delivery.id) == delivery_id,
            col(Delivery.status) == DELIVERED,
        )
        .values(
            status=status,
            last_error=(f"{kind}: {detail}" if detail else kind)[:_MAX_ERROR],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not getattr(moved, "rowcount", 0):
        return None
    await repository.refresh_status(session, client_id, row.notification_id, now=now)
    return status
