"""The leased-work engine on both databases: claim (named rows and any N due rows), the
fenced batch finish, and the sweep's bounded batches.

The run's database is shared by its tests and the sweep reads every client, so the tests
that sweep or claim across clients live in their own era (rows due decades ago, read with
`now` just after): nothing another test left behind is due then.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlmodel import col

from app.core.db import Database
from app.inbound.models import PENDING, PROCESSED, PROCESSING, InboundEvent
from app.inbound.repository import QUEUE
from app.leasing import repository as engine
from app.leasing import sweep
from tests.leasing.conftest import due_rows, forget

LEASE = 60.0


async def _statuses(db: Database, ids: list[str]) -> dict[str, tuple[str, int]]:
    async with db.read_session() as session:
        query = select(InboundEvent).where(col(InboundEvent.id).in_(ids))
        rows = (await session.execute(query)).scalars().all()
    return {r.id: (r.status, r.attempts) for r in rows}


async def test_claim_due_takes_the_oldest_n_due_rows_of_the_client_once(
    db: Database, client_id: str, other_client_id: str
) -> None:
    now = datetime(2001, 1, 1, tzinfo=timezone.utc)
    older = await due_rows(db, client_id, 3, due_at=now - timedelta(minutes=2))
    newer = await due_rows(db, client_id, 3, due_at=now - timedelta(minutes=1))
    later = await due_rows(db, client_id, 2, due_at=now + timedelta(minutes=1))
    theirs = await due_rows(db, other_client_id, 2, due_at=now - timedelta(hours=1))
    async with db.session() as session:
        first = await engine.claim_due(
            session, QUEUE, now=now, lease_seconds=LEASE, limit=4, client_id=client_id
        )
        rest = await engine.claim_due(
            session, QUEUE, now=now, lease_seconds=LEASE, limit=10, client_id=client_id
        )
        await session.commit()
    assert {r.id for r in first} == set(older) | {min(newer)}
    assert {r.id for r in rest} == set(newer) - {min(newer)}
    assert all(r.status == PROCESSING and r.attempts == 1 for r in first + rest)
    assert all(r.lease_until == now + timedelta(seconds=LEASE) for r in first + rest)
    states = await _statuses(db, later + theirs)
    assert set(states.values()) == {(PENDING, 0)}  # not due yet / another client's


async def test_claim_ids_takes_named_claimable_rows_and_expired_leases(
    db: Database, client_id: str, other_client_id: str
) -> None:
    now = datetime(2002, 1, 1, tzinfo=timezone.utc)
    ids = await due_rows(db, client_id, 3, due_at=now)
    async with db.session() as session:
        claimed = await engine.claim_ids(
            session, QUEUE, client_id, ids[:2], now=now, lease_seconds=LEASE
        )
        held = await engine.claim_ids(session, QUEUE, client_id, ids, now=now, lease_seconds=LEASE)
        forged = await engine.claim_ids(
            session, QUEUE, other_client_id, ids, now=now, lease_seconds=LEASE
        )
        await session.commit()
    assert [r.id for r in claimed] == sorted(ids[:2])
    assert [r.id for r in held] == [ids[2]]  # the leased two are not claimable again
    assert forged == []
    after_lease = now + timedelta(seconds=LEASE + 1)
    async with db.session() as session:
        retaken = await engine.claim_ids(
            session, QUEUE, client_id, ids, now=after_lease, lease_seconds=LEASE
        )
        await session.commit()
    assert [(r.id, r.attempts) for r in retaken] == [(i, 2) for i in sorted(ids)]


async def test_a_stale_finish_is_fenced_out_of_a_batch_finish(db: Database, client_id: str) -> None:
    now = datetime(2003, 1, 1, tzinfo=timezone.utc)
    ids = await due_rows(db, client_id, 3, due_at=now)
    async with db.session() as session:
        first = await engine.claim_ids(session, QUEUE, client_id, ids, now=now, lease_seconds=LEASE)
        await session.commit()
    # The first worker stalls past its lease; another claims the first row again.
    later = now + timedelta(seconds=LEASE + 1)
    async with db.session() as session:
        [successor] = await engine.claim_ids(
            session, QUEUE, client_id, ids[:1], now=later, lease_seconds=LEASE
        )
        await session.commit()
    assert successor.attempts == 2
    done = {"status": PROCESSED, "updated_at": later}
    async with db.session() as session:
        finished = await engine.finish_many(
            session,
            QUEUE,
            client_id,
            [(r.id, r.attempts) for r in first],  # the stalled worker's whole batch
            from_statuses=(PROCESSING,),
            values=done,
        )
        await session.commit()
    assert finished == set(ids[1:])
    assert (await _statuses(db, ids))[ids[0]] == (PROCESSING, 2)  # the successor's still
    async with db.session() as session:
        assert not await engine.finish_one(
            session, QUEUE, client_id, ids[0], attempts=1, from_statuses=(PROCESSING,), values=done
        )
        assert await engine.finish_one(
            session, QUEUE, client_id, ids[0], attempts=2, from_statuses=(PROCESSING,), values=done
        )
        await session.commit()
    assert set((await _statuses(db, ids)).values()) == {(PROCESSED, 2), (PROCESSED, 1)}


async def test_the_sweep_finds_due_rows_and_expired_leases_in_bounded_batches(
    db: Database, client_id: str, other_client_id: str
) -> None:
    now = datetime(1990, 6, 1, tzinfo=timezone.utc)
    due = await due_rows(db, client_id, 70, due_at=now - timedelta(minutes=5))
    due += await due_rows(db, other_client_id, 50, due_at=now - timedelta(minutes=4))
    leased = await due_rows(db, client_id, 5, due_at=now - timedelta(minutes=10))
    not_yet = await due_rows(db, client_id, 5, due_at=now + timedelta(seconds=1))
    live = await due_rows(db, client_id, 1, due_at=now)
    async with db.session() as session:
        await engine.claim_ids(
            session, QUEUE, client_id, leased, now=now - timedelta(minutes=9), lease_seconds=LEASE
        )
        await engine.claim_ids(session, QUEUE, client_id, live, now=now, lease_seconds=LEASE)
        await session.commit()
    due = sorted(due[:70]) + sorted(due[70:])
    leased = sorted(leased)
    try:
        async with db.read_session() as session:
            found = await sweep.sweep(session, QUEUE, now=now, page=32, max_rows=1000)
            bounded = await sweep.sweep(session, QUEUE, now=now, page=32, max_rows=100)
        assert [r.id for r in found] == due + leased  # due first (oldest first), then leases
        assert {r.client_id for r in found} == {client_id, other_client_id}
        assert not set(not_yet + live) & {r.id for r in found}
        assert [r.id for r in bounded] == due[:100] + leased  # each kind bounded on its own
        assert [len(b) for b in sweep.batches(found, 50)] == [50, 50, 25]
    finally:
        await forget(db, due + leased + not_yet + live)


async def test_concurrent_claimers_on_postgresql_take_disjoint_rows_without_waiting(
    pg_url: str,
) -> None:
    from tests.support.db import create_client

    db = Database(pg_url)
    try:
        client_id = await create_client(db)
        now = datetime(2004, 1, 1, tzinfo=timezone.utc)
        ids = await due_rows(db, client_id, 200, due_at=now)
        # One claimer holds its claim's row locks (its transaction open) while another
        # claims: SKIP LOCKED hands the second the next rows at once; without it the second
        # would queue behind the first's locks and then find its rows taken.
        async with db.session() as holder:
            held = await engine.claim_due(
                holder, QUEUE, now=now, lease_seconds=LEASE, limit=30, client_id=client_id
            )
            async with db.session() as other:
                beside = await asyncio.wait_for(
                    engine.claim_due(
                        other, QUEUE, now=now, lease_seconds=LEASE, limit=30, client_id=client_id
                    ),
                    timeout=10,
                )
                await other.commit()
            await holder.commit()
        assert len(held) == len(beside) == 30
        assert not {r.id for r in held} & {r.id for r in beside}

        async def claimer() -> list[str]:
            taken: list[str] = []
            while True:
                async with db.session() as session:
                    rows = await engine.claim_due(
                        session, QUEUE, now=now, lease_seconds=LEASE, limit=7, client_id=client_id
                    )
                    await session.commit()
                if not rows:
                    return taken
                taken += [r.id for r in rows]

        runs = await asyncio.gather(*(claimer() for _ in range(6)))
        everyone = [i for run in runs for i in run]
        assert len(everyone) == len(set(everyone)) == 140  # disjoint, and nothing left
        assert set(everyone) | {r.id for r in held + beside} == set(ids)
    finally:
        await db.dispose()
