"""Recovery queries on both databases: filters, tenant scope, and requeue of failed only."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from app.core.clock import ManualClock
from app.core.db import Database
from app.core.ids import new_id
from app.notifications import recovery_repository as recovery
from app.notifications import repository as notifications
from app.notifications.models import Delivery, Notification
from app.notifications.recovery_repository import FailedFilter
from app.notifications.repository import NewDelivery


async def _failed_webhooks(
    db: Database, client_id: str, endpoints: list[str], clock: ManualClock
) -> list[str]:
    now = clock.now()
    n = Notification(
        id=new_id(),
        client_id=client_id,
        channels=["webhook"],
        content={"webhook": {"event_type": "x", "payload": {}}},
        send_at=now,
        created_at=now,
    )
    items = [NewDelivery("webhook", {"endpoint_id": e}, endpoint_id=e) for e in endpoints]
    async with db.session() as session:
        ids = await notifications.create_notification(session, client_id, n, items, now=now)
        assert ids is not None
        await session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(ids))
            .values(status="failed", attempts=3, next_attempt_at=None)
        )
        await session.commit()
    return ids


async def test_failed_deliveries_filter_and_requeue(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    before = clock.now()
    clock.advance(10)
    mine = await _failed_webhooks(db, client_id, ["e1", "e1", "e2"], clock)
    theirs = await _failed_webhooks(db, other_client_id, ["e1"], clock)
    async with db.session() as session:
        e1 = await recovery.failed_deliveries(
            session, client_id, FailedFilter(endpoint_id="e1"), 10
        )
        assert [d for d, _ in e1] == mine[:2]
        assert (
            await recovery.failed_deliveries(
                session, client_id, FailedFilter(created_before=before), 10
            )
            == []
        )
        assert (
            len(
                await recovery.failed_deliveries(
                    session, client_id, FailedFilter(created_after=before), 10
                )
            )
            == 3
        )
        assert (
            await recovery.failed_deliveries(session, client_id, FailedFilter(channel="email"), 10)
            == []
        )
        await recovery.lock_notifications(session, client_id, sorted({n for _, n in e1}))
        done = await recovery.requeue(
            session, client_id, [d for d, _ in e1] + theirs, now=clock.now()
        )
        await session.commit()
    # Another tenant's delivery id is never touched, whatever the caller passes.
    assert sorted(d for d, _ in done) == sorted(mine[:2])
    async with db.session() as session:
        again = await recovery.requeue(session, client_id, mine[:2], now=clock.now())
        await session.commit()
        rows = {
            d.id: d
            for d in (await notifications.get_with_deliveries(session, client_id, e1[0][1]))[1]  # type: ignore[index]
        }
    assert again == []
    assert rows[mine[0]].status == "pending" and rows[mine[0]].attempts == 0
    assert rows[mine[2]].status == "failed"
