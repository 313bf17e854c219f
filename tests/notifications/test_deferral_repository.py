"""Giving claims back unspent and handing waiting rows over, on both databases
(app/notifications/deferral_repository.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core.clock import ManualClock
from app.core.db import Database
from app.notifications import deferral_repository as deferrals
from app.notifications import delivery_repository as deliveries
from tests.notifications.test_deliveries import _claim, _get, _notify


async def _give_back(
    db: Database,
    client_id: str,
    claims: list[tuple[str, int, datetime | None]],
    clock: ManualClock,
) -> set[str]:
    async with db.session() as session:
        done = await deferrals.give_back_many(session, client_id, claims, now=clock.now())
        await session.commit()
    return done


async def test_a_claim_given_back_is_unspent_still_due_and_claimable_again(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    due = clock.now()
    _, [first, second] = await _notify(db, client_id, due, count=2)
    clock.advance(5)
    claims = [await _claim(db, client_id, i, clock.now()) for i in (first, second)]
    assert [c.attempts for c in claims if c] == [1, 1]

    assert await _give_back(db, client_id, [(first, 1, None), (second, 1, None)], clock) == {
        first,
        second,
    }
    for delivery_id in (first, second):
        row = await _get(db, client_id, delivery_id)
        assert (row.status, row.attempts, row.lease_until) == ("pending", 0, None)
        assert row.next_attempt_at == due  # still due as it was: no timer
    again = await _claim(db, client_id, first, clock.now())
    assert again is not None and again.attempts == 1


async def test_giving_back_is_fenced_on_the_claim_and_keeps_a_retried_rows_history(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    _, [delivery_id] = await _notify(db, client_id, clock.now())
    claim = await _claim(db, client_id, delivery_id, clock.now())
    assert claim is not None
    async with db.session() as session:  # a real attempt failed: retried later
        await deliveries.mark_retrying(
            session,
            client_id,
            delivery_id,
            now=clock.now(),
            next_attempt_at=clock.now() + timedelta(seconds=5),
            error="HTTP 503",
            attempts=1,
        )
        await session.commit()
    clock.advance(6)
    second = await _claim(db, client_id, delivery_id, clock.now())
    assert second is not None and second.attempts == 2

    # A stale claim (attempt 1) gives nothing back; another client's id neither.
    assert await _give_back(db, client_id, [(delivery_id, 1, None)], clock) == set()
    assert (await _get(db, client_id, delivery_id)).status == "sending"
    until = clock.now() + timedelta(seconds=30)  # a quota's window reset
    assert await _give_back(db, client_id, [(delivery_id, 2, until)], clock) == {delivery_id}
    row = await _get(db, client_id, delivery_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("retrying", 1, until)
    assert row.last_error == "HTTP 503"  # the receiver's last word, not our refusal


async def test_hand_over_makes_waiting_rows_due_now_unless_they_moved_on(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    due = clock.now()
    _, [waiting, attempted, later] = await _notify(db, client_id, due, count=3)
    for delivery_id in (waiting, attempted, later):
        await _claim(db, client_id, delivery_id, clock.now())
    await _give_back(
        db,
        client_id,
        [(waiting, 1, None), (attempted, 1, None), (later, 1, due + timedelta(hours=1))],
        clock,
    )
    await _claim(db, client_id, attempted, clock.now())  # taken again elsewhere: attempts 1
    clock.advance(3)
    rows = [(waiting, 0), (attempted, 0), (later, 0)]
    async with db.session() as session:
        assert await deferrals.hand_over(session, other_client_id, rows, now=clock.now()) == 0
        assert await deferrals.hand_over(session, client_id, rows, now=clock.now()) == 1
        await session.commit()
    assert (await _get(db, client_id, waiting)).next_attempt_at == clock.now()
    assert (await _get(db, client_id, attempted)).status == "sending"
    assert (await _get(db, client_id, later)).next_attempt_at == due + timedelta(hours=1)
