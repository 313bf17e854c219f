"""The delivery work queue on both databases: claim, lease, finish, sweep, purge."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from app.core.clock import ManualClock
from app.core.db import Database
from app.core.ids import new_id
from app.notifications import delivery_repository as deliveries
from app.notifications import repository as notifications
from app.notifications import sweep_repository as sweeps
from app.notifications.models import Delivery, Notification
from app.notifications.repository import NewDelivery
from tests.support.db import create_client

LEASE = 30.0


async def _notify(
    db: Database,
    client_id: str,
    now: datetime,
    *,
    count: int = 1,
    send_at: datetime | None = None,
    channel: str = "email",
    user_id: str | None = None,
) -> tuple[str, list[str]]:
    """A committed notification with `count` deliveries; (notification id, delivery ids)."""
    notification = Notification(
        id=new_id(),
        client_id=client_id,
        channels=[channel],
        send_at=send_at or now,
        created_at=now,
    )
    items = [
        NewDelivery(channel=channel, recipient={"user_id": user_id}, recipient_user_id=user_id)
        for _ in range(count)
    ]
    async with db.session() as session:
        ids = await notifications.create_notification(
            session, client_id, notification, items, now=now
        )
        await session.commit()
    assert ids is not None
    return notification.id, ids


async def _claim(db: Database, client_id: str, delivery_id: str, now: datetime) -> Delivery | None:
    async with db.session() as session:
        row = await deliveries.claim(session, client_id, delivery_id, now=now, lease_seconds=LEASE)
        await session.commit()
    return row


async def _get(db: Database, client_id: str, delivery_id: str) -> Delivery:
    async with db.read_session() as session:
        row = await deliveries.get(session, client_id, delivery_id)
    assert row is not None
    return row


async def test_claim_takes_a_due_delivery_once_and_counts_the_attempt(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    _, [delivery_id] = await _notify(db, client_id, now)
    claimed = await _claim(db, client_id, delivery_id, now)
    assert claimed is not None
    assert (claimed.status, claimed.attempts) == ("sending", 1)
    assert claimed.lease_until == now + timedelta(seconds=LEASE)
    assert await _claim(db, client_id, delivery_id, now) is None


async def test_a_delivery_is_not_claimable_before_it_is_due(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    _, [delivery_id] = await _notify(db, client_id, now, send_at=now + timedelta(hours=1))
    assert await _claim(db, client_id, delivery_id, now) is None
    clock.advance(3600)
    assert await _claim(db, client_id, delivery_id, clock.now()) is not None


async def test_an_expired_lease_is_reclaimable_and_an_unexpired_one_is_not(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    _, [delivery_id] = await _notify(db, client_id, now)
    assert await _claim(db, client_id, delivery_id, now) is not None
    clock.advance(LEASE - 1)
    assert await _claim(db, client_id, delivery_id, clock.now()) is None
    clock.advance(2)
    again = await _claim(db, client_id, delivery_id, clock.now())
    assert again is not None
    assert (again.status, again.attempts) == ("sending", 2)


async def test_a_worker_whose_lease_was_reclaimed_cannot_finish_the_delivery(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    _, [delivery_id] = await _notify(db, client_id, now)
    first = await _claim(db, client_id, delivery_id, now)
    clock.advance(LEASE + 1)
    second = await _claim(db, client_id, delivery_id, clock.now())
    assert first is not None and second is not None
    async with db.session() as session:
        stale = await deliveries.mark_delivered(
            session, client_id, delivery_id, now=clock.now(), attempts=first.attempts
        )
        current = await deliveries.mark_delivered(
            session, client_id, delivery_id, now=clock.now(), attempts=second.attempts
        )
        await session.commit()
    assert (stale, current) == (False, True)
    row = await _get(db, client_id, delivery_id)
    assert (row.status, row.delivered_at, row.lease_until) == ("delivered", clock.now(), None)


async def test_concurrent_claims_of_one_delivery_have_exactly_one_winner(
    pg_url: str, clock: ManualClock
) -> None:
    db = Database(pg_url)
    try:
        client_id = await create_client(db)
        now = clock.now()
        _, [delivery_id] = await _notify(db, client_id, now)
        ready = asyncio.Barrier(20)

        async def contender() -> bool:
            async with db.session() as session:
                # Each contender has its own connection and open transaction first, so
                # the 20 UPDATEs really race on the row lock.
                await session.connection()
                await ready.wait()
                row = await deliveries.claim(
                    session, client_id, delivery_id, now=now, lease_seconds=LEASE
                )
                await session.commit()
                return row is not None

        wins = await asyncio.gather(*(contender() for _ in range(20)))
        assert wins.count(True) == 1
        assert (await _get(db, client_id, delivery_id)).attempts == 1
    finally:
        await db.dispose()


async def test_retrying_waits_for_its_time_then_failed_ends_and_retry_requeues(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    notification_id, [delivery_id] = await _notify(db, client_id, now)
    claimed = await _claim(db, client_id, delivery_id, now)
    assert claimed is not None
    async with db.session() as session:
        assert await deliveries.mark_retrying(
            session,
            client_id,
            delivery_id,
            now=now,
            next_attempt_at=now + timedelta(seconds=5),
            error="503",
            attempts=claimed.attempts,
        )
        await session.commit()
    row = await _get(db, client_id, delivery_id)
    assert (row.status, row.last_error, row.lease_until) == ("retrying", "503", None)
    assert await _claim(db, client_id, delivery_id, now + timedelta(seconds=4)) is None
    assert await _claim(db, client_id, delivery_id, now + timedelta(seconds=5)) is not None
    async with db.session() as session:
        assert await deliveries.mark_failed(session, client_id, delivery_id, now=now, error="x")
        await session.commit()
    assert await _claim(db, client_id, delivery_id, now + timedelta(days=1)) is None
    async with db.session() as session:
        requeued = await deliveries.requeue_failed(session, client_id, notification_id, now=now)
        await session.commit()
    assert requeued == [delivery_id]
    row = await _get(db, client_id, delivery_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, now)


async def test_cancel_stops_pending_and_retrying_deliveries_but_not_one_being_sent(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    notification_id, ids = await _notify(db, client_id, now, count=4)
    await _claim(db, client_id, ids[1], now)  # stays sending
    await _claim(db, client_id, ids[2], now)
    await _claim(db, client_id, ids[3], now)
    async with db.session() as session:
        await deliveries.mark_retrying(
            session, client_id, ids[2], now=now, next_attempt_at=now, error=None
        )
        await deliveries.mark_delivered(session, client_id, ids[3], now=now)
        canceled = await deliveries.cancel_pending(session, client_id, notification_id, now=now)
        await session.commit()
    assert sorted(canceled) == sorted([ids[0], ids[2]])
    statuses = [(await _get(db, client_id, i)).status for i in ids]
    assert statuses == ["canceled", "sending", "canceled", "delivered"]


async def test_due_sweep_finds_due_rows_and_expired_leases_only(
    db: Database, client_id: str
) -> None:
    # A time long before every other test's rows, so only this test's rows are due.
    t0 = datetime(1991, 1, 1, tzinfo=timezone.utc)
    _, [due_pending] = await _notify(db, client_id, t0)
    _, [_not_due_yet] = await _notify(db, client_id, t0, send_at=t0 + timedelta(hours=1))
    _, [retry_due, retry_future, leased, lease_expired, done] = await _notify(
        db, client_id, t0, count=5
    )
    for delivery_id in (retry_due, retry_future, done):
        await _claim(db, client_id, delivery_id, t0)
    async with db.session() as session:
        await deliveries.mark_retrying(
            session, client_id, retry_due, now=t0, next_attempt_at=t0, error=None
        )
        await deliveries.mark_retrying(
            session,
            client_id,
            retry_future,
            now=t0,
            next_attempt_at=t0 + timedelta(hours=1),
            error=None,
        )
        await deliveries.mark_delivered(session, client_id, done, now=t0)
        await session.commit()
    now = t0 + timedelta(seconds=60)
    await _claim(db, client_id, leased, now - timedelta(seconds=1))  # lease ends now + 29 s
    await _claim(db, client_id, lease_expired, t0)  # lease ended at t0 + 30 s

    async def pages(fetch: str) -> list[str]:
        found: list[str] = []
        after = None
        while True:
            async with db.read_session() as session:
                page = await getattr(sweeps, fetch)(session, now=now, limit=1, after=after)
            if not page:
                return found
            found += [d.id for d in page]
            after = (page[-1].at, page[-1].id)

    assert sorted(await pages("due_deliveries")) == sorted([due_pending, retry_due])
    assert await pages("expired_leases") == [lease_expired]


async def test_another_clients_ids_reach_nothing(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    notification_id, [delivery_id] = await _notify(db, client_id, now)
    async with db.session() as session:
        assert await deliveries.get(session, other_client_id, delivery_id) is None
        assert (
            await deliveries.claim(
                session, other_client_id, delivery_id, now=now, lease_seconds=LEASE
            )
            is None
        )
        assert not await deliveries.mark_failed(
            session, other_client_id, delivery_id, now=now, error=None
        )
        assert not await deliveries.mark_skipped(
            session, other_client_id, delivery_id, now=now, reason="x"
        )
        assert (
            await deliveries.cancel_pending(session, other_client_id, notification_id, now=now)
            == []
        )
        assert await notifications.get(session, other_client_id, notification_id) is None
        assert (
            await notifications.get_with_deliveries(session, other_client_id, notification_id)
            is None
        )
        await session.commit()
    assert (await _get(db, client_id, delivery_id)).status == "pending"


async def test_attempts_keep_4kb_of_reply_are_listed_in_order_and_purged_in_batches(
    db: Database, client_id: str, other_client_id: str
) -> None:
    t0 = datetime(1992, 1, 1, tzinfo=timezone.utc)
    notification_id, [delivery_id] = await _notify(db, client_id, t0)
    claimed = await _claim(db, client_id, delivery_id, t0)
    assert claimed is not None
    async with db.session() as session:
        for i in range(3):
            await deliveries.record_attempt(
                session,
                client_id,
                claimed,
                now=t0 + timedelta(seconds=i),
                outcome="retry",
                duration_ms=12,
                response_code=500,
                reply="é" * 5000,  # 10,000 bytes of UTF-8
                served_by="primary",
            )
        await session.commit()
    async with db.read_session() as session:
        listed = await deliveries.list_attempts(session, client_id, notification_id, limit=2)
        rest = await deliveries.list_attempts(
            session, client_id, notification_id, limit=2, after=listed[1][0].id
        )
        foreign = await deliveries.list_attempts(session, other_client_id, notification_id, limit=2)
    assert len(listed) == 3 and len(rest) == 1 and foreign == []
    attempt, channel, recipient = listed[0]
    assert (channel, recipient, attempt.response_code) == ("email", {"user_id": None}, 500)
    assert attempt.reply is not None and len(attempt.reply.encode()) <= 4096
    assert attempt.reply == "é" * 2048

    async with db.session() as session:
        first = await sweeps.purge_attempts(session, before=t0 + timedelta(seconds=2), limit=1)
        second = await sweeps.purge_attempts(session, before=t0 + timedelta(seconds=2), limit=1)
        third = await sweeps.purge_attempts(session, before=t0 + timedelta(seconds=2), limit=1)
        await session.commit()
    assert (first, second, third) == (1, 1, 0)
    async with db.read_session() as session:
        left = await deliveries.list_attempts(session, client_id, notification_id, limit=10)
    assert [a.attempted_at for a, _, _ in left] == [t0 + timedelta(seconds=2)]
