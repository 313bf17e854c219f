"""Content marks on both databases: claim, a live mark refuses, an expired one is taken
over, scoping by hook and client, and the mark going with its event."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import col

from app.core.clock import ManualClock, utcnow
from app.core.db import Database
from app.inbound import content_marks, repository
from app.inbound.models import InboundContentMark
from tests.inbound.test_repository import _event, _hook

DIGEST = "ab" * 32


async def _claim(db: Database, client_id: str, hook_id: str, event_id: str, seconds: int) -> bool:
    now = utcnow()
    async with db.session() as session:
        claimed = await content_marks.claim(
            session,
            client_id,
            hook_id,
            DIGEST,
            event_id=event_id,
            now=now,
            until=now + timedelta(seconds=seconds),
        )
        await session.commit()
    return claimed


async def _holder(db: Database, client_id: str, hook_id: str) -> str | None:
    async with db.read_session() as session:
        event = await content_marks.event_of(session, client_id, hook_id, DIGEST)
    return event.id if event is not None else None


async def test_a_live_mark_refuses_and_an_expired_one_is_taken_over(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    hook = await _hook(db, client_id)
    first, second, third = [await _event(db, client_id, hook) for _ in range(3)]
    assert await _claim(db, client_id, hook, first, 60)
    clock.advance(59)
    assert not await _claim(db, client_id, hook, second, 60)
    assert await _holder(db, client_id, hook) == first  # the refusal did not move it
    clock.advance(1)  # the window is [first, first + 60 s)
    assert await _claim(db, client_id, hook, third, 60)
    assert await _holder(db, client_id, hook) == third


async def test_marks_are_per_hook_and_scoped_by_client(
    db: Database, client_id: str, other_client_id: str
) -> None:
    a, b = await _hook(db, client_id), await _hook(db, client_id)
    on_a, on_b = await _event(db, client_id, a), await _event(db, client_id, b)
    assert await _claim(db, client_id, a, on_a, 60)
    assert await _claim(db, client_id, b, on_b, 60)
    assert await _holder(db, client_id, a) == on_a
    assert await _holder(db, other_client_id, a) is None


async def test_a_mark_goes_with_its_event_and_hook(db: Database, client_id: str) -> None:
    hook = await _hook(db, client_id)
    event = await _event(db, client_id, hook)
    assert await _claim(db, client_id, hook, event, 600)
    async with db.session() as session:
        assert await repository.delete_hook(session, client_id, hook)
        await session.commit()
    async with db.read_session() as session:
        left = await session.execute(
            select(func.count())
            .select_from(InboundContentMark)
            .where(col(InboundContentMark.hook_id) == hook)
        )
        assert left.scalar_one() == 0
