"""Fixtures for repository tests: a Database on each backend and a fresh client row."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.core.db import Database
from app.core.ids import new_id
from app.tenants.models import Client


async def create_client(db: Database) -> str:
    """Insert a client (tenant) row directly; its id."""
    client_id = new_id()
    async with db.session() as session:
        session.add(Client(id=client_id, name="t", slug=f"t-{client_id.lower()}"))
        await session.commit()
    return client_id


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The run's migrated database (SQLite, then PostgreSQL) behind a fresh engine."""
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def client_id(db: Database) -> str:
    """A new client of this test."""
    return await create_client(db)


@pytest.fixture
async def other_client_id(db: Database) -> str:
    """A second client, for isolation checks."""
    return await create_client(db)
