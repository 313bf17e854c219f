"""SQLite concurrency: writers queue for the lock, readers do not wait for writers."""

from __future__ import annotations

import asyncio

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
