"""SQLite concurrency: writers queue for the lock, readers do not wait for writers."""

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
