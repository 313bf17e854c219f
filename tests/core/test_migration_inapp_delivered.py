"""Migration 0012 on existing rows, on both databases: in-app deliveries become delivered
when stored — pushed ones get `pushed_at`; parked ones (offline users) and ones failed as
"expired" while parked become `delivered` with a push owed; their notification is
`delivered` when nothing else is owed or failed. Downgrading parks the owed ones again."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.core.db import create_engine
from app.core.migrations import downgrade, upgrade
from app.core.types import UTCDateTime
from tests.conftest import create_pg_database, drop_pg_database

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 1, 5, 9, 5, tzinfo=timezone.utc)

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
DELIVERIES = sa.Table(
    "deliveries",
    _md,
    sa.Column("id", sa.String),
    sa.Column("client_id", sa.String),
    sa.Column("notification_id", sa.String),
    sa.Column("channel", sa.String),
    sa.Column("recipient", sa.JSON),
    sa.Column("recipient_user_id", sa.String),
    sa.Column("status", sa.String),
    sa.Column("attempts", sa.Integer),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
)
CLIENT = "01CLIENT00000000000000000X"


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server_url: str
) -> AsyncIterator[str]:
    """An empty database of this test alone."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'inapp.db'}"
        return
    name = f"chatapi_mig12_{secrets.token_hex(4)}"
    url = await create_pg_database(pg_server_url, name)
    try:
        yield url
    finally:
        await drop_pg_database(pg_server_url, name)


def _delivery(did: str, nid: str, channel: str, status: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": did, "client_id": CLIENT, "notification_id": nid, "channel": channel,
        "recipient": {}, "recipient_user_id": "u", "status": status, "attempts": 1,
        "next_attempt_at": None, "last_error": None, "delivered_at": None,
        "created_at": T0, "updated_at": T0,
    }  # fmt: skip
    row.update(extra)
    return row


async def _seed(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(CLIENTS),
                [{"id": CLIENT, "name": "t", "slug": "t", "settings": {}, "created_at": T0}],
            )
            await conn.execute(
                sa.insert(NOTIFICATIONS),
                [
                    {"id": n, "client_id": CLIENT, "status": s, "channels": ["websocket"],
                     "content": {}, "metadata": {}, "critical": False, "send_at": T0,
                     "created_at": T0}
                    for n, s in (("N1", "pending"), ("N2", "failed"), ("N3", "pending"))
                ],
            )  # fmt: skip
            await conn.execute(
                sa.insert(DELIVERIES),
                [
                    _delivery("D1", "N1", "websocket", "delivered", delivered_at=T1),
                    _delivery("D2", "N1", "websocket", "pending"),  # parked
                    _delivery("D3", "N2", "websocket", "failed", last_error="expired"),
                    _delivery("D4", "N3", "websocket", "pending"),  # parked
                    _delivery("D5", "N3", "email", "retrying", next_attempt_at=T1),
                ],
            )
    finally:
        await engine.dispose()


async def _rows(url: str) -> tuple[dict[str, tuple[object, ...]], dict[str, str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            deliveries = {
                r[0]: tuple(r[1:])
                for r in await conn.execute(
                    sa.text(
                        "SELECT id, status, delivered_at IS NOT NULL, pushed_at IS NOT NULL FROM deliveries"
                    )
                )
            }
            notifications = {
                r[0]: r[1]
                for r in await conn.execute(sa.text("SELECT id, status FROM notifications"))
            }
    finally:
        await engine.dispose()
    return deliveries, notifications


async def test_parked_and_expired_in_app_rows_become_delivered_with_a_push_owed(
    fresh_url: str,
) -> None:
    await asyncio.to_thread(upgrade, fresh_url, "0011")
    await _seed(fresh_url)
    await asyncio.to_thread(upgrade, fresh_url, "0012")
    deliveries, notifications = await _rows(fresh_url)
    assert deliveries == {
        "D1": ("delivered", True, True),  # pushed when it was delivered
        "D2": ("delivered", True, False),  # parked: stored, push owed
        "D3": ("delivered", True, False),  # expired while parked: the inbox had it
        "D4": ("delivered", True, False),
        "D5": ("retrying", False, False),  # other channels untouched
    }
    assert notifications == {"N1": "delivered", "N2": "delivered", "N3": "pending"}
    await asyncio.to_thread(downgrade, fresh_url, "0011")
    engine = create_engine(fresh_url)
    try:
        async with engine.connect() as conn:
            parked = (
                (
                    await conn.execute(
                        sa.text(
                            "SELECT id FROM deliveries WHERE status = 'pending' "
                            "AND next_attempt_at IS NULL ORDER BY id"
                        )
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert list(parked) == ["D2", "D3", "D4"]
