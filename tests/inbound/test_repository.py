"""The inbound event queue on both databases: claim, lease, fencing, retries, sweep."""

from __future__ import annotations

from datetime import timedelta

from app.core.clock import ManualClock, utcnow
from app.core.db import Database
from app.core.ids import new_id
from app.inbound import repository, room_keys
from app.inbound.models import InboundEvent, InboundWebhook


async def _hook(db: Database, client_id: str) -> str:
    hook = InboundWebhook(
        id=new_id(),
        client_id=client_id,
        name=new_id(),
        action="room",
        scheme="github",
        secret_sealed="x",
    )
    async with db.session() as session:
        await repository.add_hook(session, client_id, hook)
        await session.commit()
    return hook.id


async def _event(db: Database, client_id: str, hook_id: str, key: str | None = None) -> str:
    now = utcnow()
    event = InboundEvent(
        id=new_id(),
        client_id=client_id,
        hook_id=hook_id,
        dedupe_key=key,
        body=b"{}",
        next_attempt_at=now,
        received_at=now,
        updated_at=now,
    )
    async with db.session() as session:
        assert await repository.insert_event(session, client_id, event)
        await session.commit()
    return event.id


async def test_an_event_is_claimed_once_until_its_lease_expires(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    event_id = await _event(db, client_id, await _hook(db, client_id))
    async with db.session() as session:
        first = await repository.claim(session, client_id, event_id, now=utcnow(), lease_seconds=60)
        again = await repository.claim(session, client_id, event_id, now=utcnow(), lease_seconds=60)
        await session.commit()
    assert first is not None and first.attempts == 1 and again is None
    clock.advance(61)
    async with db.session() as session:
        expired = await repository.due_events(session, now=utcnow(), limit=10)
        leases = await repository.expired_leases(session, now=utcnow(), limit=100)
        retaken = await repository.claim(
            session, client_id, event_id, now=utcnow(), lease_seconds=60
        )
        await session.commit()
    assert event_id not in [d.id for d in expired]
    assert event_id in [d.id for d in leases]
    assert retaken is not None and retaken.attempts == 2
    # The first worker's late finish is fenced out: the row belongs to attempt 2 now.
    async with db.session() as session:
        late = await repository.mark_processed(
            session, client_id, event_id, attempts=1, outcome={}, now=utcnow()
        )
        current = await repository.mark_processed(
            session, client_id, event_id, attempts=2, outcome={"ok": 1}, now=utcnow()
        )
        await session.commit()
    assert (late, current) == (False, True)


async def test_a_retrying_event_is_due_only_at_its_time(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    event_id = await _event(db, client_id, await _hook(db, client_id))
    async with db.session() as session:
        claimed = await repository.claim(
            session, client_id, event_id, now=utcnow(), lease_seconds=60
        )
        assert claimed is not None
        await repository.mark_retrying(
            session,
            client_id,
            event_id,
            attempts=1,
            error="boom",
            next_attempt_at=utcnow() + timedelta(seconds=30),
            now=utcnow(),
        )
        await session.commit()
    async with db.session() as session:
        assert (
            await repository.claim(session, client_id, event_id, now=utcnow(), lease_seconds=60)
            is None
        )
        assert event_id not in [
            d.id for d in await repository.due_events(session, now=utcnow(), limit=1000)
        ]
        await session.rollback()
    clock.advance(30)
    async with db.session() as session:
        assert event_id in [
            d.id for d in await repository.due_events(session, now=utcnow(), limit=1000)
        ]
        assert (
            await repository.claim(session, client_id, event_id, now=utcnow(), lease_seconds=60)
            is not None
        )
        await session.commit()


async def test_another_clients_event_cannot_be_claimed_or_read(
    db: Database, client_id: str, other_client_id: str
) -> None:
    hook_id = await _hook(db, client_id)
    event_id = await _event(db, client_id, hook_id)
    async with db.session() as session:
        assert (
            await repository.claim(
                session, other_client_id, event_id, now=utcnow(), lease_seconds=60
            )
            is None
        )
        assert await repository.get_event(session, other_client_id, event_id) is None
        assert await repository.get_hook(session, other_client_id, hook_id) is None
        await session.rollback()


async def test_dedupe_key_is_unique_per_hook_and_null_keys_never_collide(
    db: Database, client_id: str
) -> None:
    hook_id = await _hook(db, client_id)
    await _event(db, client_id, hook_id, "k")
    now = utcnow()
    duplicate = InboundEvent(
        id=new_id(),
        client_id=client_id,
        hook_id=hook_id,
        dedupe_key="k",
        body=b"",
        next_attempt_at=now,
    )
    async with db.session() as session:
        assert await repository.insert_event(session, client_id, duplicate) is False
        await session.rollback()
    await _event(db, client_id, hook_id)
    await _event(db, client_id, hook_id)


async def test_room_key_reservation_is_shared_and_replaced_only_from_the_old_id(
    db: Database, client_id: str
) -> None:
    hook_id = await _hook(db, client_id)
    async with db.session() as session:
        first = await room_keys.reserve(
            session, client_id, hook_id, "t-1", room_id="A" * 26, now=utcnow()
        )
        second = await room_keys.reserve(
            session, client_id, hook_id, "t-1", room_id="B" * 26, now=utcnow()
        )
        replaced = await room_keys.replace(
            session, client_id, hook_id, "t-1", old_room_id="A" * 26, new_room_id="C" * 26
        )
        stale = await room_keys.replace(
            session, client_id, hook_id, "t-1", old_room_id="A" * 26, new_room_id="D" * 26
        )
        await session.commit()
    assert (first, second, replaced, stale) == ("A" * 26, "A" * 26, "C" * 26, "C" * 26)
