"""The async engine and sessions: SQLite (WAL, busy timeout, serialised writers) or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option marking a connection whose transactions only read.
READ_ONLY = "chatapi_read_only"
# Execution option marking a connection that runs one read-only statement and no more: on
# SQLite it gets no BEGIN (one statement is its own consistent snapshot).
SINGLE_READ = "chatapi_single_read"
# PostgreSQL's isolation level where each statement commits on its own (`autocommit`).
AUTOCOMMIT = "AUTOCOMMIT"


#: PostgreSQL connections `Database.hot_driver` keeps out of the pool (of its 30).
HOT_CONNECTIONS = 16

#: Connections of a SQLite database's read pool (its write pool has exactly one).
SQLITE_READERS = 5


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for `url` with the per-dialect settings this service relies on."""
    # Parameters are sealed secrets, bcrypt hashes, message bodies: never in a log line (the
    # statement log, when someone turns it on) nor in an error's message (which is logged
    # and sent to Sentry). The statement itself still shows.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        engine = create_async_engine(url, **kwargs)
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
        options = conn.get_execution_options()
        if options.get(SINGLE_READ, False):
            return  # autocommit (isolation_level None): the statement is its own transaction
        begin = "BEGIN" if options.get(READ_ONLY, False) else "BEGIN IMMEDIATE"
        # Given to aiosqlite itself (SQLAlchemy's public `run_async`): one hop to its thread,
        # where the adapter's cursor makes three (cursor, execute, close).
        conn.connection.dbapi_connection.run_async(lambda raw: raw.execute(begin))


def _is_file_sqlite(url: str) -> bool:
    return url.startswith("sqlite") and ":memory:" not in url and "mode=memory" not in url


class Database:
    """One engine and its session factory; each event loop that talks to the DB owns one.

    On a SQLite file the writers of this process share one connection (`engine`, a pool of
    one) and readers have a pool of their own (`read_engine`). SQLite lets one transaction
    write at a time anyway; with a pool of writers each waited for the lock in SQLite's busy
    handler, which polls with sleeps (up to 100 ms each), so under load most of a send was
    sleeping. Queued on the one connection, the next writer starts the moment the previous
    one commits. Other processes writing the same file still meet the busy timeout.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect_name = "sqlite" if url.startswith("sqlite") else "postgresql"
        if _is_file_sqlite(url):
            # pool_timeout: a writer waits for the connection as long as it would have
            # waited for SQLite's lock.
            self.engine = create_engine(
                url,
                pool_size=1,
                max_overflow=0,
                pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
            self.read_engine = create_engine(url, pool_size=SQLITE_READERS, max_overflow=10)
        else:
            self.engine = create_engine(url)
            self.read_engine = self.engine
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessionmaker = async_sessionmaker(
            self.read_engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        # PostgreSQL: AUTOCOMMIT, so no BEGIN/ROLLBACK round trips around the statement.
        single_read: dict[str, Any] = {READ_ONLY: True, SINGLE_READ: True}
        if not url.startswith("sqlite"):
            single_read["isolation_level"] = "AUTOCOMMIT"
        self._single_read_engine = self.read_engine.execution_options(**single_read)
        # PostgreSQL: pooled connections kept checked out for autocommit statements.
        self._hot: list[Any] = []
        self._hot_out = 0  # kept connections out, or places given to a waiter to open one
        self._hot_waiters: deque[asyncio.Future[Any]] = deque()

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

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """A pooled write connection's own driver connection (asyncpg's or aiosqlite's),
        outside any transaction: on PostgreSQL each statement commits on its own; on SQLite
        the caller runs `BEGIN IMMEDIATE` … `COMMIT` itself when it needs more than one.

        For hot paths of one or a few statements: no session, no unit of work and no
        SQLAlchemy execution layer, which profiled at three times the driver's own cost
        per statement. Statements use the driver's parameter style and Python values.
        """
        pooled = await self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        except BaseException:
            # A connection the server dropped must not go back to the pool.
            if _driver_closed(pooled.driver_connection):
                pooled.invalidate()
            raise
        finally:
            # The return runs the pool's reset (a rollback of whatever was left open), which
            # awaits the driver: SQLAlchemy runs it inside its greenlet.
            await greenlet_spawn(pooled.close)

    @asynccontextmanager
    async def hot_driver(self) -> AsyncIterator[Any]:
        """An asyncpg connection for autocommit statements (each commits on its own), kept
        checked out of the pool between uses; None on SQLite.

        A send's statements cost less than the pool's checkout and return around them
        (events, a greenlet hop each way, the reset's rollback): these connections skip
        both. Nothing is left open on them between uses (no transaction), so no reset is
        owed; one left in a transaction or cut mid-statement (a cancelled request) is
        closed, never reused. When all HOT_CONNECTIONS are out the caller waits for one
        (first come, first served): the usual way would wait on the same database, and pay
        the checkout besides.
        """
        if self.dialect_name != "postgresql":
            yield None
            return
        pooled = await self._take_hot()
        driver: Any = pooled.driver_connection
        reusable = False
        try:
            yield driver
            reusable = True
        except Exception:
            # A refused request (422, a failed statement) leaves the connection as it was;
            # a cancelled one may be mid-statement.
            reusable = True
            raise
        finally:
            if reusable and not _driver_closed(driver) and not driver.is_in_transaction():
                self._give_hot(pooled)
            else:
                # The pool's reset would not end a transaction begun on the driver itself,
                # nor a statement cut mid-way: such a connection is closed, not pooled.
                self._give_hot(None)
                await greenlet_spawn(_discard, pooled)

    async def _take_hot(self) -> Any:
        """A kept connection: an idle one, a new one while fewer than HOT_CONNECTIONS are
        out, else the next one given back."""
        if self._hot:
            self._hot_out += 1
            return self._hot.pop()
        if self._hot_out < HOT_CONNECTIONS:
            self._hot_out += 1
            return await self._open_hot()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._hot_waiters.append(waiter)
        try:
            pooled = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_hot(waiter.result())  # handed over as we were cancelled: pass it on
            raise
        # None: a connection was closed, its place is ours to open a new one in.
        return pooled if pooled is not None else await self._open_hot()

    async def _open_hot(self) -> Any:
        try:
            return await self.engine.raw_connection()
        except BaseException:
            self._give_hot(None)
            raise

    def _give_hot(self, pooled: Any) -> None:
        """Hand a kept connection (or, None, its place) to the first waiter, else keep it."""
        while self._hot_waiters:
            waiter = self._hot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(pooled)
                return
        self._hot_out -= 1
        if pooled is not None:
            self._hot.append(pooled)

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for ONE read-only statement, outside any transaction.

        For hot reads (a socket connect's): no ORM session, and no BEGIN/ROLLBACK around the
        statement — on SQLite that saves three of aiosqlite's thread hops per read, on
        PostgreSQL two round trips. A second statement would see a different snapshot; reads
        that need one snapshot use `read_session`.
        """
        async with self._single_read_engine.connect() as conn:
            yield conn

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise if the database does not answer `SELECT 1` within `timeout` seconds."""

        async def _select_one() -> None:
            # The read pool: on SQLite the one write connection may be busy with a writer.
            async with self.read_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.wait_for(_select_one(), timeout)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        hot, self._hot = self._hot, []
        for pooled in hot:
            await greenlet_spawn(pooled.close)
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _discard(pooled: Any) -> None:
    # Inside SQLAlchemy's greenlet: closing the driver connection awaits it.
    pooled.invalidate()
    pooled.close()


def _driver_closed(driver: Any) -> bool:
    is_closed = getattr(driver, "is_closed", None)  # asyncpg; aiosqlite has no such test
    return bool(is_closed()) if callable(is_closed) else False
