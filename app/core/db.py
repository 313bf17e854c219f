"""The async engine and sessions: SQLite (WAL, busy timeout, serialised writers) or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option marking a connection whose transactions only read.
READ_ONLY = "chatapi_read_only"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for `url` with the per-dialect settings this service relies on."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    # At most 30 connections as before, but all of them kept: an overflow connection is
    # closed on return, so a load above the pool size opened (fork on the server, TLS
    # negotiation) and closed one per request; profiled at a third of the send throughput.
    kwargs.setdefault("pool_size", 30)
    kwargs.setdefault("max_overflow", 0)
    engine = create_async_engine(url, **kwargs)
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


#: A pooled connection idle for longer than this is pinged before use.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pre-ping only connections that sat idle in the pool for `idle_seconds`.

    `pool_pre_ping` costs a round trip on every checkout, one of a message send's six
    statements. A connection used moments ago is as good as a ping says it is; one that sat
    idle may have been cut (server restart, proxy timeout) and is pinged as before; a dead
    one is replaced (DisconnectionError makes the pool retry with a fresh connection).
    """
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # brand new, or used moments ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("idle pooled connection failed its ping") from exc
        if not alive:
            raise DisconnectionError("idle pooled connection failed its ping")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so `begin` below decides how to start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: concurrent writers wait on busy_timeout
        # instead of failing with "database is locked" when a read upgrades to a write.
        # Read-only transactions never upgrade, so they start deferred and, under WAL,
        # run alongside writers and each other instead of queueing for the lock.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; each event loop that talks to the DB owns one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that rolls back on error and is always closed."""
        async with self.sessionmaker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for work that only reads (on SQLite it does not take the write lock)."""
        # Closing ends the transaction (the pool resets the connection) without expiring
        # the objects read, which callers use after the block.
        async with self.read_sessionmaker() as session:
            yield session

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise if the database does not answer `SELECT 1` within `timeout` seconds."""

        async def _select_one() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.wait_for(_select_one(), timeout)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
