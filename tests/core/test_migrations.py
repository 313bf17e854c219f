"""Alembic is the only way the schema is made: up, down and up again on both databases."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.core.db import create_engine
from app.core.migrations import downgrade, upgrade
from tests.conftest import create_pg_database, drop_pg_database


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def _roundtrip(url: str) -> None:
    expected = set(SQLModel.metadata.tables)
    await asyncio.to_thread(upgrade, url)
    assert await _tables(url) == expected
    await asyncio.to_thread(downgrade, url, "base")
    assert await _tables(url) == set()
    await asyncio.to_thread(upgrade, url)
    assert await _tables(url) == expected


async def test_migrations_up_down_up_on_sqlite(tmp_path: Path) -> None:
    await _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


async def test_head_schema_holds_no_test_only_tables(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    await asyncio.to_thread(upgrade, url)
    assert "task_probes" not in await _tables(url)


async def test_migrations_up_down_up_on_postgresql(pg_server_url: str) -> None:
    name = f"chatapi_mig_{secrets.token_hex(4)}"
    url = await create_pg_database(pg_server_url, name)
    try:
        await _roundtrip(url)
    finally:
        await drop_pg_database(pg_server_url, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_models_and_migrations_agree(
    backend: str, tmp_path: Path, pg_server_url: str
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    if backend == "sqlite":
        url, cleanup = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", None
    else:
        cleanup = f"chatapi_cmp_{secrets.token_hex(4)}"
        url = await create_pg_database(pg_server_url, cleanup)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
            )
        await engine.dispose()
        assert diff == [], f"models differ from migrations: {diff}"
    finally:
        if cleanup:
            await drop_pg_database(pg_server_url, cleanup)
