"""Migration 0014 (issue 20, point 5) on existing rows, on both databases: the inbox items'
per-recipient copy of the content goes, the content lives once in the notification, and every
item still shows what it showed — also an item whose notification lacked (or disagreed on)
the websocket content, or had no notification row at all. Downgrading brings the copies back."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from app.core.db import Database, create_engine
from app.core.migrations import downgrade, upgrade
from app.core.types import UTCDateTime
from app.inbox import repository as inbox
from tests.conftest import create_pg_database, drop_pg_database

BEFORE = "0009"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

# The tables as they stand at 0009 (only the columns a row needs).
_md = sa.MetaData()
CLIENTS = sa.Table(
    "clients",
    _md,
    sa.Column("id", sa.String),
    sa.Column("name", sa.String),
    sa.Column("slug", sa.String),
    sa.Column("settings", sa.JSON),
    sa.Column("created_at", UTCDateTime),
)
USERS = sa.Table(
    "users",
    _md,
    sa.Column("id", sa.String),
    sa.Column("client_id", sa.String),
    sa.Column("external_id", sa.String),
    sa.Column("metadata", sa.JSON),
    sa.Column("created_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
)
NOTIFICATIONS = sa.Table(
    "notifications",
    _md,
    sa.Column("id", sa.String),
    sa.Column("client_id", sa.String),
    sa.Column("status", sa.String),
    sa.Column("channels", sa.JSON),
    sa.Column("content", sa.JSON),
    sa.Column("metadata", sa.JSON),
    sa.Column("critical", sa.Boolean),
    sa.Column("send_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime),
)
ITEMS = sa.Table(
    "inbox_items",
    _md,
    sa.Column("id", sa.String),
    sa.Column("client_id", sa.String),
    sa.Column("user_id", sa.String),
    sa.Column("notification_id", sa.String),
    sa.Column("event", sa.String),
    sa.Column("data", sa.JSON),
    sa.Column("created_at", UTCDateTime),
)

BIG = {"order": "A-1", "note": "é" * 3000}
# (item id, user, notification id, event, data): the ordinary case (two users, one notification),
# a notification whose content has no websocket part, one whose websocket part disagrees with
# its item, and an item whose notification row is gone.
ROWS = [
    ("01ITEM000000000000000000A1", "ada", "01NOTE0000000000000000000A", "order.shipped", BIG),
    ("01ITEM000000000000000000A2", "bob", "01NOTE0000000000000000000A", "order.shipped", BIG),
    ("01ITEM000000000000000000B1", "ada", "01NOTE0000000000000000000B", "legacy", {"v": 1}),
    ("01ITEM000000000000000000C1", "ada", "01NOTE0000000000000000000C", "edited", {"v": 2}),
    ("01ITEM000000000000000000D1", "bob", "01NOTE0000000000000000000D", "orphan", {"v": 3}),
]
CONTENT = {
    "01NOTE0000000000000000000A": {
        "websocket": {"event": "order.shipped", "data": BIG},
        "email": {"subject": "Shipped", "text": "On its way"},
    },
    "01NOTE0000000000000000000B": {"email": {"subject": "Legacy", "text": "x"}},
    "01NOTE0000000000000000000C": {"websocket": {"event": "edited", "data": {"v": 0}}},
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server_url: str
) -> AsyncIterator[str]:
    """An empty database of this test alone."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}"
        return
    name = f"chatapi_mig14_{secrets.token_hex(4)}"
    url = await create_pg_database(pg_server_url, name)
    try:
        yield url
    finally:
        await drop_pg_database(pg_server_url, name)


async def _seed(url: str) -> tuple[str, dict[str, str]]:
    client_id = "01CLIENT00000000000000000X"
    users = {"ada": "01USER000000000000000000AD", "bob": "01USER000000000000000000BB"}
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(CLIENTS),
                [{"id": client_id, "name": "t", "slug": "t", "settings": {}, "created_at": T0}],
            )
            await conn.execute(
                sa.insert(USERS),
                [
                    {
                        "id": uid,
                        "client_id": client_id,
                        "external_id": name,
                        "metadata": {},
                        "created_at": T0,
                        "updated_at": T0,
                    }
                    for name, uid in users.items()
                ],
            )
            await conn.execute(
                sa.insert(NOTIFICATIONS),
                [
                    {
                        "id": nid,
                        "client_id": client_id,
                        "status": "delivered",
                        "channels": list(content),
                        "content": content,
                        "metadata": {},
                        "critical": False,
                        "send_at": T0,
                        "created_at": T0,
                    }
                    for nid, content in CONTENT.items()
                ],
            )
            await conn.execute(
                sa.insert(ITEMS),
                [
                    {
                        "id": item_id,
                        "client_id": client_id,
                        "user_id": users[who],
                        "notification_id": nid,
                        "event": event,
                        "data": data,
                        "created_at": T0,
                    }
                    for item_id, who, nid, event, data in ROWS
                ],
            )
    finally:
        await engine.dispose()
    return client_id, users


async def _columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("inbox_items")}
            )
    finally:
        await engine.dispose()


async def _shown(url: str, client_id: str, users: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """Every item as the inbox shows it: id → (event, data)."""
    db = Database(url)
    try:
        out: dict[str, tuple[str, Any]] = {}
        async with db.read_session() as session:
            for user_id in users.values():
                for entry in await inbox.list_page(session, client_id, user_id, now=NOW, limit=50):
                    out[entry.id] = (entry.item.event, entry.data)
        return out
    finally:
        await db.dispose()


async def _copies(url: str) -> dict[str, tuple[str, Any]]:
    """The per-item copies (schema before 0014): id → (event, data)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(ITEMS.c.id, ITEMS.c.event, ITEMS.c.data))).all()
    finally:
        await engine.dispose()
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_existing_inbox_items_keep_their_content_through_the_migration(
    fresh_url: str,
) -> None:
    expected = {item_id: (event, data) for item_id, _, _, event, data in ROWS}
    await asyncio.to_thread(upgrade, fresh_url, BEFORE)
    client_id, users = await _seed(fresh_url)

    await asyncio.to_thread(upgrade, fresh_url, "head")
    # The per-recipient copy is gone; the content is read from the notification.
    assert "data" not in await _columns(fresh_url)
    assert await _shown(fresh_url, client_id, users) == expected

    # And back: every item has its copy again.
    await asyncio.to_thread(downgrade, fresh_url, BEFORE)
    assert "data" in await _columns(fresh_url)
    assert await _copies(fresh_url) == expected
