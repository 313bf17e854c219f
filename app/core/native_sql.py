"""Statements given to the database driver itself (asyncpg or aiosqlite), past
SQLAlchemy's execution layer, for the hot paths: a native query in a session's transaction
or on a driver connection, whole-row INSERTs, and autocommit on PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.db import AUTOCOMMIT

#: Runs one statement written for the driver (its parameter style, Python values); its rows.
NativeQuery = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]


def driver_query(driver: Any) -> NativeQuery:
    """A NativeQuery on a driver connection from `Database.driver_connection`."""
    if hasattr(driver, "execute_fetchall"):  # aiosqlite

        async def sqlite_query(sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
            rows: Sequence[Sequence[Any]] = await driver.execute_fetchall(sql, tuple(args))
            return rows

        return sqlite_query

    async def asyncpg_query(sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await driver.fetch(sql, *args)
        return rows

    return asyncpg_query


def session_query(session: AsyncSession) -> NativeQuery:
    """A NativeQuery in `session`'s transaction (begun by the first statement, as usual):
    SQLAlchemy passes the statement to the driver without compiling it."""

    async def query(sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        driver = _autocommit_driver(session)
        if driver is not None:
            # Outside a transaction there is none to keep in step: the statement goes to
            # asyncpg itself, past SQLAlchemy's execution layer (cursor adapter, result
            # objects, greenlet hop), which profiled at four times asyncpg's own cost.
            # Driver errors then come as asyncpg's exceptions, not DBAPIError.
            rows: Sequence[Sequence[Any]] = await driver.fetch(sql, *args)
            return rows
        conn = await session.connection()
        raw = _sqlite_driver(conn)
        if raw is not None:
            # aiosqlite runs execute + fetchall as one call on its thread; SQLAlchemy's
            # adapter makes four (cursor, execute, fetchall, close), each a thread hop.
            return list(await raw.execute_fetchall(sql, tuple(args)))
        result = await conn.exec_driver_sql(sql, tuple(args))
        return result.all() if result.returns_rows else []

    return query


async def insert_rows(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERT `rows` (by column name; every row names the first row's columns) into `table`
    in the session's transaction, as `session.execute(insert(table), rows)` would.

    The driver runs it itself, the values bound by the columns' own types (JSON,
    UTCDateTime, booleans as SQLAlchemy stores them). On SQLite: one hop to aiosqlite's
    thread for all the rows, where SQLAlchemy's adapter makes three (cursor, executemany,
    close); on PostgreSQL: asyncpg's executemany of one prepared statement."""
    if not rows:
        return
    conn = await session.connection()
    dialect = conn.dialect
    raw = _sqlite_driver(conn)
    if raw is None and dialect.name != "postgresql":
        await session.execute(insert(table), list(rows))
        return
    names = tuple(rows[0])
    sql, processors = _native_insert(table, names, dialect)
    values = [
        tuple(row[n] if p is None else p(row[n]) for n, p in zip(names, processors, strict=True))
        for row in rows
    ]
    if raw is not None:
        await raw.executemany(sql, values)
    else:
        # asyncpg's executemany through SQLAlchemy's adapter (which begins the session's
        # transaction first): one prepared statement, the rows bound in binary; SQLAlchemy's
        # own path renders a multi-row VALUES and processes every parameter per batch.
        await conn.exec_driver_sql(sql, values)


_NATIVE_INSERTS: dict[tuple[str, tuple[str, ...], str], tuple[str, list[Any]]] = {}


def _native_insert(table: Table, names: tuple[str, ...], dialect: Any) -> tuple[str, list[Any]]:
    key = (table.name, names, dialect.name)
    found = _NATIVE_INSERTS.get(key)
    if found is None:
        quote = dialect.identifier_preparer.quote
        marks = (
            [f"${i}" for i in range(1, len(names) + 1)]
            if dialect.name == "postgresql"
            else ["?"] * len(names)
        )
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join(marks)})"
        )
        found = (sql, [table.c[n].type.bind_processor(dialect) for n in names])
        _NATIVE_INSERTS[key] = found
    return found


def _sqlite_driver(conn: AsyncConnection) -> Any:
    """The aiosqlite connection under `conn` (SQLite), else None."""
    if conn.dialect.name != "sqlite" or conn.sync_connection is None:
        return None
    return conn.sync_connection.connection.driver_connection


# session.info key: (the session transaction `autocommit` began, its asyncpg connection).
_AUTOCOMMIT_DRIVER = "chatapi_autocommit_driver"


def _autocommit_driver(session: AsyncSession) -> Any:
    """The asyncpg connection `autocommit` gave `session`, while that transaction lasts;
    else None (a session in a transaction, or on SQLite).

    Remembered rather than asked for: each `session.connection()` is a greenlet hop, and a
    send runs three statements. A commit or close ends the transaction (its connection
    goes back to the pool), so the memo is only trusted for the same one."""
    memo = session.info.get(_AUTOCOMMIT_DRIVER)
    if memo is not None and memo[0] is session.sync_session.get_transaction():
        return memo[1]
    return None


async def autocommit(session: AsyncSession, driver: Any = None) -> None:
    """From here on each statement of `session` commits on its own, on PostgreSQL; call it
    before the session's first statement, for work whose writes are one statement (atomic
    alone): no BEGIN and COMMIT round trips. SQLite keeps its transaction (its writers take
    the write lock when it begins). The caller still commits, which then has nothing to do.

    `driver` (from `Database.hot_driver`): the driver statements run on it, and the session
    checks out no connection of its own for them.
    """
    if driver is not None:
        session.info[_AUTOCOMMIT_DRIVER] = (session.sync_session.get_transaction(), driver)
        return
    if session.get_bind().dialect.name == "postgresql":
        conn = await session.connection(execution_options={"isolation_level": AUTOCOMMIT})
        if conn.sync_connection is not None:
            driver = conn.sync_connection.connection.driver_connection
            session.info[_AUTOCOMMIT_DRIVER] = (session.sync_session.get_transaction(), driver)


def forget_driver(session: AsyncSession) -> None:
    """Stop running `session`'s driver statements on the connection `autocommit` gave it
    (that connection goes back to `Database.hot_driver`)."""
    session.info.pop(_AUTOCOMMIT_DRIVER, None)
