"""Bulk recovery: re-queue a tenant's failed deliveries by filter (Svix's "recover failed
messages"), a bounded batch per call.

Each call re-queues at most `RECOVER_BATCH` deliveries, oldest first, and says `has_more`
when more matched: re-queued deliveries are no longer `failed`, so calling again with the
same filter takes the next batch, and a call with nothing left failed re-queues nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.doorbell import Doorbell
from app.notifications import recovery_repository as repository
from app.notifications import repository as notifications
from app.notifications.recovery_repository import FailedFilter
from app.webhooks import service as webhooks

# Deliveries re-queued per call at most (a bounded transaction); `has_more` says call again.
RECOVER_BATCH = 500


async def requeue_failed(
    session: AsyncSession,
    client_id: str,
    where: FailedFilter,
    doorbell: Doorbell,
    *,
    batch: int = RECOVER_BATCH,
) -> tuple[int, bool]:
    """Re-queue up to `batch` failed deliveries matching `where` (fresh attempt budget, due
    now) and ring for them; returns (how many, whether more matched)."""
    found = await repository.failed_deliveries(session, client_id, where, batch + 1)
    has_more = len(found) > batch
    found = found[:batch]
    if not found:
        return 0, False
    await repository.lock_notifications(session, client_id, sorted({n for _, n in found}))
    now = utcnow()
    requeued = await repository.requeue(session, client_id, [d for d, _ in found], now=now)
    for notification_id in sorted({n for _, n in requeued}):
        await notifications.refresh_status(session, client_id, notification_id, now=now)
    await session.commit()
    await doorbell.ring_deliveries(client_id, [d for d, _ in requeued])
    return len(requeued), has_more


async def recover_endpoint(
    session: AsyncSession, client_id: str, endpoint_id: str, since: datetime, doorbell: Doorbell
) -> tuple[int, bool]:
    """Re-queue the endpoint's deliveries that failed, created since `since`; 404 for an
    endpoint the client does not have."""
    await webhooks.get_endpoint(session, client_id, endpoint_id)
    # Only the endpoint's own deliveries carry its id: no channel filter is needed.
    where = FailedFilter(endpoint_id=endpoint_id, created_after=since)
    return await requeue_failed(session, client_id, where, doorbell)
