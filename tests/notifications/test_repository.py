"""Notifications on both databases: fan-out insert, idempotency, listing, derived status."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.core.clock import ManualClock
from app.core.db import Database
from app.core.ids import new_id
from app.core.native_sql import autocommit, forget_driver
from app.notifications import delivery_repository as deliveries
from app.notifications import idempotency_repository as idempotency
from app.notifications import repository as notifications
from app.notifications.models import Delivery, Notification
from app.notifications.repository import NewDelivery, derive_status
from tests.support.db import create_client


def _notification(
    client_id: str, now: datetime, *, channels: list[str] | None = None, key: str | None = None
) -> Notification:
    return Notification(
        id=new_id(),
        client_id=client_id,
        channels=channels or ["email"],
        content={"email": {"subject": "hi"}},
        send_at=now,
        created_at=now,
        idempotency_key=key,
        request_hash="h" * 64 if key else None,
    )


async def _create(
    db: Database,
    client_id: str,
    notification: Notification,
    items: list[NewDelivery],
    now: datetime,
) -> list[str] | None:
    async with db.session() as session:
        ids = await notifications.create_notification(
            session, client_id, notification, items, now=now
        )
        if ids is None:
            await session.rollback()
        else:
            await session.commit()
    return ids


async def test_a_notification_with_10000_deliveries_is_stored_in_batches(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    notification = _notification(client_id, now)
    items = [
        NewDelivery(channel="email", recipient={"email": f"u{i}@example.com"})
        for i in range(10_000)
    ]
    started = time.perf_counter()
    ids = await _create(db, client_id, notification, items, now)
    elapsed = time.perf_counter() - started
    print(f"\n10,000 deliveries on {db.engine.dialect.name}: {elapsed:.2f} s")
    assert ids is not None and len(set(ids)) == 10_000
    async with db.read_session() as session:
        counts = await notifications.delivery_status_counts(session, client_id, [notification.id])
        due = (
            await session.execute(
                select(func.count())
                .select_from(Delivery)
                .where(
                    col(Delivery.notification_id) == notification.id,
                    col(Delivery.next_attempt_at) == now,
                    col(Delivery.attempts) == 0,
                )
            )
        ).scalar_one()
    assert counts == {notification.id: {"pending": 10_000}}
    assert due == 10_000


async def test_the_same_idempotency_key_returns_the_first_notification_until_it_expires(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    item = [NewDelivery(channel="email", recipient={"email": "a@b.c"})]
    first = _notification(client_id, clock.now(), key="order-1")
    assert await _create(db, client_id, first, item, clock.now()) is not None
    second = _notification(client_id, clock.now(), key="order-1")
    assert await _create(db, client_id, second, item, clock.now()) is None
    # Another client's identical key is its own.
    foreign = _notification(other_client_id, clock.now(), key="order-1")
    assert await _create(db, other_client_id, foreign, item, clock.now()) is not None
    async with db.read_session() as session:
        found = await idempotency.find(session, client_id, "order-1", now=clock.now())
        assert await notifications.get(session, client_id, second.id) is None
    assert found is not None and found[1].id == first.id and found[0].request_hash == "h" * 64

    clock.advance(24 * 3600)
    async with db.read_session() as session:
        expired = await idempotency.find(session, client_id, "order-1", now=clock.now())
    assert expired is None
    third = _notification(client_id, clock.now(), key="order-1")
    assert await _create(db, client_id, third, item, clock.now()) is not None
    async with db.read_session() as session:
        found = await idempotency.find(session, client_id, "order-1", now=clock.now())
    assert found is not None and found[1].id == third.id


async def test_a_held_key_writes_nothing_even_outside_a_transaction(
    pg_url: str, clock: ManualClock
) -> None:
    # The send runs its statements in autocommit on PostgreSQL: the key's reservation must
    # gate the notification's inserts within the one statement, nothing to roll back.
    db = Database(pg_url)
    try:
        client_id = await create_client(db)
        item = [NewDelivery(channel="email", recipient={"email": "a@b.c"})]
        first = _notification(client_id, clock.now(), key="gate")
        second = _notification(client_id, clock.now(), key="gate")
        for n, stored in ((first, True), (second, False)):
            async with db.session() as session, db.hot_driver() as driver:
                await autocommit(session, driver)
                ids = await notifications.create_notification(
                    session, client_id, n, item, now=clock.now()
                )
                assert (ids is not None) is stored
                forget_driver(session)
        async with db.read_session() as session:
            assert await notifications.get(session, client_id, second.id) is None
            count = select(func.count()).where(col(Delivery.client_id) == client_id)
            assert (await session.execute(count)).scalar_one() == 1
            held = await idempotency.held(session, client_id, "gate", now=clock.now())
        assert held == ("h" * 64, first.id)
    finally:
        await db.dispose()


async def test_concurrent_sends_with_one_idempotency_key_store_one_notification(
    pg_url: str, clock: ManualClock
) -> None:
    db = Database(pg_url)
    try:
        client_id = await create_client(db)
        ready = asyncio.Barrier(5)

        async def send() -> bool:
            notification = _notification(client_id, clock.now(), key="race")
            async with db.session() as session:
                await session.connection()
                await ready.wait()
                ids = await notifications.create_notification(
                    session,
                    client_id,
                    notification,
                    [NewDelivery(channel="email", recipient={})],
                    now=clock.now(),
                )
                await (session.commit() if ids is not None else session.rollback())
            return ids is not None

        results = await asyncio.gather(*(send() for _ in range(5)))
        assert results.count(True) == 1
        async with db.read_session() as session:
            stored = await notifications.list_page(session, client_id, limit=10)
        assert len(stored) == 1
    finally:
        await db.dispose()


async def test_purging_idempotency_records_removes_only_expired_ones(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    item = [NewDelivery(channel="email", recipient={})]
    old = _notification(client_id, clock.now(), key="old")
    await _create(db, client_id, old, item, clock.now())
    clock.advance(24 * 3600)
    fresh = _notification(client_id, clock.now(), key="fresh")
    await _create(db, client_id, fresh, item, clock.now())
    async with db.session() as session:
        purged = await idempotency.purge_expired(session, now=clock.now(), limit=100_000)
        await session.commit()
    assert purged >= 1
    async with db.session() as session:
        # The expired key is free again: a new send may take it.
        assert await idempotency.reserve(
            session,
            client_id,
            "old",
            request_hash="x",
            notification_id=fresh.id,
            now=clock.now(),
        )
        assert not await idempotency.reserve(
            session,
            client_id,
            "fresh",
            request_hash="x",
            notification_id=old.id,
            now=clock.now(),
        )
        await session.rollback()


async def test_listing_filters_by_status_channel_and_time_and_pages_newest_first(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    t0 = clock.now()
    made: list[Notification] = []
    for i, channel in enumerate(["email", "webhook", "email", "websocket", "email"]):
        n = _notification(client_id, t0 + timedelta(minutes=i), channels=[channel])
        await _create(db, client_id, n, [NewDelivery(channel=channel, recipient={})], t0)
        made.append(n)
    await _create(
        db,
        other_client_id,
        _notification(other_client_id, t0),
        [NewDelivery(channel="email", recipient={})],
        t0,
    )
    async with db.session() as session:
        await session.execute(
            Notification.__table__.update()  # type: ignore[attr-defined]
            .where(col(Notification.id) == made[2].id)
            .values(status="failed")
        )
        await session.commit()
    newest_first = [n.id for n in reversed(made)]

    async with db.read_session() as session:
        page1 = await notifications.list_page(session, client_id, limit=2)
        page2 = await notifications.list_page(session, client_id, limit=2, after=page1[1].id)
        emails = await notifications.list_page(session, client_id, limit=10, channel="email")
        failed = await notifications.list_page(session, client_id, limit=10, status="failed")
        window = await notifications.list_page(
            session,
            client_id,
            limit=10,
            created_after=t0 + timedelta(minutes=1),
            created_before=t0 + timedelta(minutes=3),
        )
    assert [n.id for n in page1] == newest_first[:3]  # limit + 1: the extra says "more"
    assert [n.id for n in page2] == newest_first[2:5]
    assert [n.id for n in emails] == [made[4].id, made[2].id, made[0].id]
    assert [n.id for n in failed] == [made[2].id]
    assert [n.id for n in window] == [made[2].id, made[1].id]


@pytest.mark.parametrize(
    ("counts", "scheduled", "expected"),
    [
        ({"pending": 2}, True, "scheduled"),
        ({"pending": 1, "delivered": 1}, False, "pending"),
        ({"sending": 1, "failed": 1}, False, "pending"),
        ({"delivered": 2, "skipped": 1}, False, "delivered"),
        ({"skipped": 2}, False, "delivered"),
        ({"delivered": 1, "failed": 1}, False, "partial"),
        ({"delivered": 1, "canceled": 1}, False, "partial"),
        ({"failed": 2, "canceled": 1}, False, "failed"),
        ({"canceled": 2, "skipped": 1}, False, "canceled"),
        ({}, False, "delivered"),
    ],
)
def test_notification_status_is_derived_from_its_deliveries(
    counts: dict[str, int], scheduled: bool, expected: str
) -> None:
    assert derive_status(counts, scheduled=scheduled) == expected


async def test_refresh_status_stores_the_derived_status(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    now = clock.now()
    n = _notification(client_id, now)
    ids = await _create(db, client_id, n, [NewDelivery("email", {}), NewDelivery("email", {})], now)
    assert ids is not None
    async with db.session() as session:
        assert await notifications.refresh_status(session, client_id, n.id, now=now) == "pending"
        for delivery_id in ids:
            await deliveries.claim(session, client_id, delivery_id, now=now, lease_seconds=30)
        await deliveries.mark_delivered(session, client_id, ids[0], now=now)
        await deliveries.mark_failed(session, client_id, ids[1], now=now, error="550")
        assert await notifications.refresh_status(session, client_id, n.id, now=now) == "partial"
        await session.commit()
    async with db.read_session() as session:
        got = await notifications.get_with_deliveries(session, client_id, n.id)
    assert got is not None
    notification, rows = got
    assert notification.status == "partial"
    assert [(d.id, d.status) for d in rows] == [(ids[0], "delivered"), (ids[1], "failed")]
