"""Fault tests run on servers of their own: one throwaway PostgreSQL for the directory (each
test gets a fresh database on it) and one throwaway Redis per test, so stopping or
restarting them never disturbs the suite's shared servers (DESIGN.md §7)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.core.migrations import upgrade
from scripts.throwaway import Server, start_postgres, start_redis
from tests.conftest import create_pg_database
from tests.faults.stack import Stack


@pytest.fixture(scope="package")
async def fault_postgres() -> AsyncIterator[Server]:
    """A PostgreSQL server of the fault tests' own.

    Its directory is outside pytest's temporary tree: pytest may reset that tree's modes to
    0700 meanwhile, and the server runs as another user (root may not run PostgreSQL).
    """
    workdir = Path(tempfile.mkdtemp(prefix="chatapi-fault-pg-"))
    server = await asyncio.to_thread(start_postgres, workdir)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop, "fast")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def fault_redis(tmp_path: Path) -> AsyncIterator[Server]:
    """A Redis server of this test's own (nothing kept on disk: a restart empties it)."""
    server = await asyncio.to_thread(start_redis, tmp_path / "redis")
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
async def fault_db(fault_postgres: Server) -> str:
    """A fresh migrated database on the fault tests' PostgreSQL."""
    url = await create_pg_database(fault_postgres.url, f"faults_{secrets.token_hex(4)}")
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture
async def make_stack(
    fault_db: str, fault_redis: Server, tmp_path: Path
) -> AsyncIterator[Callable[..., Stack]]:
    """`make_stack(**settings)`: a Stack on this test's servers; closed after the test."""
    made: list[Stack] = []

    def factory(**overrides: object) -> Stack:
        stack = Stack(fault_db, fault_redis, tmp_path, **overrides)
        made.append(stack)
        return stack

    yield factory
    for stack in made:
        await stack.close()
