"""The engine and its pool: SQLite concurrency (writers queue for the lock, readers do not
wait), PostgreSQL connections cut by the server."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from app.core.db import Database


async def test_sqlite_reads_proceed_while_a_write_transaction_is_open(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        async with db.session() as writer:
            await writer.execute(text("UPDATE heartbeats SET count = count + 1"))  # holds the lock

            async def read() -> int:
                async with db.read_session() as reader:
                    return int(
                        (await reader.execute(text("SELECT count(*) FROM heartbeats"))).scalar_one()
                    )

            assert await asyncio.wait_for(read(), timeout=2) >= 0

            async def write() -> None:
                async with db.session() as other:
                    await other.execute(text("UPDATE heartbeats SET count = count + 1"))
                    await other.commit()

            queued = asyncio.create_task(write())
            await asyncio.sleep(0.3)
            assert not queued.done(), "a second writer must wait for the first"
            await writer.rollback()
        await asyncio.wait_for(queued, timeout=5)
    finally:
        await db.dispose()


async def test_an_idle_pooled_connection_cut_by_the_server_is_replaced_not_an_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core import db as db_module

    # Every checked-in connection counts as idle at once (no sleeping in the test).
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = db_module.create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # The server cuts the pooled connection (as a restart or a proxy timeout would).
        other = await asyncpg.connect("postgresql://" + pg_url.split("://", 1)[1])
        try:
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await other.close()
        # The dead connection comes out of the pool, is pinged, and is replaced.
        for _ in range(2):
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_a_session_the_server_ends_mid_statement_reads_as_unavailable_then_recovers(
    pg_url: str,
) -> None:
    from app.core.errors import database_unavailable

    db = Database(pg_url)
    other = await asyncpg.connect("postgresql://" + pg_url.split("://", 1)[1])
    try:
        async with db.session() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            running = asyncio.create_task(session.execute(text("SELECT pg_sleep(30)")))
            # What a PostgreSQL stop or restart does to every session: ended by the server.
            for _ in range(1000):  # until the statement runs (10 s at most)
                if await other.fetchval(
                    "SELECT state = 'active' FROM pg_stat_activity WHERE pid = $1", pid
                ):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("pg_sleep never started")
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(Exception) as caught:
                await running
        # An outage (the API answers 503 problem+json), not a wrong statement (a 500).
        assert database_unavailable(caught.value), repr(caught.value)
        async with db.session() as session:  # the pool hands out a live connection next
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await other.close()
        await db.dispose()


async def test_driver_statements_after_an_autocommit_transaction_join_the_next_one(
    pg_url: str,
) -> None:
    # AUTOCOMMIT statements go to asyncpg itself, its connection remembered for the
    # session's transaction; once that ends (commit), the next statement must run in the
    # new transaction on whatever connection it has, never on the one given back.
    from app.core.native_sql import autocommit, session_query

    db = Database(pg_url)
    marker = f"test-{asyncio.get_running_loop().time()}"
    try:
        async with db.session() as session:
            await autocommit(session)
            query = session_query(session)
            await query("UPDATE heartbeats SET count = count + 1 WHERE false", [])
            assert (await query("SELECT $1::text", [marker]))[0][0] == marker
            await session.commit()
            await query("CREATE TEMP TABLE p1_probe (v text) ON COMMIT DROP", [])
            await query("INSERT INTO p1_probe VALUES ($1)", [marker])
            assert (await query("SELECT v FROM p1_probe", []))[0][0] == marker
            await session.rollback()
    finally:
        await db.dispose()


async def test_hot_driver_connections_are_kept_out_and_reused_only_when_clean(
    pg_url: str, sqlite_url: str
) -> None:
    db = Database(pg_url)
    try:
        async with db.hot_driver() as first:
            pid = await first.fetchval("SELECT pg_backend_pid()")
        async with db.hot_driver() as again:
            # The same connection, without going back through the pool in between.
            assert await again.fetchval("SELECT pg_backend_pid()") == pid
        with pytest.raises(asyncpg.PostgresError):
            async with db.hot_driver() as failing:
                await failing.fetchval("SELECT 1/0")
        async with db.hot_driver() as after_error:
            assert await after_error.fetchval("SELECT pg_backend_pid()") == pid
        async with db.hot_driver() as left_open:
            await left_open.execute("BEGIN")
        # A transaction left open is closed with its connection, never handed out again.
        async with db.hot_driver() as fresh:
            assert not fresh.is_in_transaction()
            assert await fresh.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await db.dispose()
    lite = Database(sqlite_url)
    try:
        async with lite.hot_driver() as none:
            assert none is None  # SQLite keeps its sessions
    finally:
        await lite.dispose()


async def test_hot_driver_waits_for_a_kept_connection_when_all_are_out(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core import db as db_module

    monkeypatch.setattr(db_module, "HOT_CONNECTIONS", 2)
    db = Database(pg_url)
    release, both_out = asyncio.Event(), asyncio.Event()
    pids: list[int] = []

    async def hold() -> None:
        async with db.hot_driver() as driver:
            pids.append(await driver.fetchval("SELECT pg_backend_pid()"))
            if len(pids) == 2:
                both_out.set()
            await release.wait()

    async def third() -> int:
        async with db.hot_driver() as driver:
            return int(await driver.fetchval("SELECT pg_backend_pid()"))

    try:
        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await asyncio.wait_for(both_out.wait(), 10)
        cancelled = asyncio.create_task(third())
        waiting = asyncio.create_task(third())
        await asyncio.sleep(0)  # both queue up behind the two kept connections
        cancelled.cancel()
        release.set()
        await asyncio.gather(*holders)
        # It waited for a kept connection rather than opening a third; the cancelled
        # waiter's turn went to it.
        assert await asyncio.wait_for(waiting, 10) in pids
        assert cancelled.cancelled()
        async with db.hot_driver() as left_open:
            await left_open.execute("BEGIN")  # closed on return: its place opens a new one
        async with db.hot_driver() as a, db.hot_driver() as b:
            assert not a.is_in_transaction() and not b.is_in_transaction()
    finally:
        await db.dispose()
