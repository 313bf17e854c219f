"""The delivery queue as the database sees it: how many deliveries are due and not yet
taken, and how long the oldest has waited (for /metrics and /health/ready)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlmodel import col

from app.core.clock import utcnow
from app.core.db import Database
from app.notifications.models import PENDING, RETRYING, Delivery


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Due deliveries not held by a worker, and the oldest one's wait in seconds."""

    depth: int
    oldest_due_age_seconds: float


async def queue_stats(db: Database) -> QueueStats:
    """Read the queue (all clients: an operator's view) along ix_deliveries_due."""
    now = utcnow()
    due_at = col(Delivery.next_attempt_at)
    query = select(func.count(), func.min(due_at)).where(
        col(Delivery.status).in_((PENDING, RETRYING)),
        due_at <= now,
        or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
    )
    async with db.read_session() as session:
        depth, oldest = (await session.execute(query)).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite's aggregate loses the type
        from datetime import timezone

        oldest = oldest.replace(tzinfo=timezone.utc)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return QueueStats(int(depth or 0), age)
