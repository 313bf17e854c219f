"""Migration 0015 on existing rows, on both databases: each client's `email_configs` row
becomes its `smtp` providers (`smtp`, `smtp-fallback`) with the sealed passwords carried over
as they are, its `email` route names them, `/email-config`'s view and the delivery route read
them, and the table is gone. Downgrading brings the rows back."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from app.core.crypto import SecretBox
from app.core.db import Database, create_engine
from app.core.migrations import downgrade, upgrade
from app.core.types import UTCDateTime
from app.email import repository as email_configs
from app.providers.builtin.smtp import SmtpProviderType
from app.providers.routing import route_for_delivery
from tests.conftest import create_pg_database, drop_pg_database

BEFORE = "0014"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
BOX = SecretBox("a deployment's key")
A, B = "01CLIENT00000000000000000A", "01CLIENT00000000000000000B"

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
EMAIL_CONFIGS = sa.Table(
    "email_configs",
    _md,
    sa.Column("client_id", sa.String),
    sa.Column("host", sa.String),
    sa.Column("port", sa.Integer),
    sa.Column("username", sa.String),
    sa.Column("password_sealed", sa.String),
    sa.Column("security", sa.String),
    sa.Column("from_email", sa.String),
    sa.Column("from_name", sa.String),
    sa.Column("fallback", sa.JSON),
    sa.Column("updated_at", UTCDateTime),
)
SEALED = BOX.seal("primary-pw")
FALLBACK = {
    "host": "backup.example.net",
    "port": 465,
    "username": "backup",
    "password_sealed": BOX.seal("fallback-pw"),
    "security": "tls",
    "from_email": "noreply@b.example",
    "from_name": None,
}
CONFIGS = [
    {
        "client_id": A,
        "host": "smtp.a.example",
        "port": 587,
        "username": "relay",
        "password_sealed": SEALED,
        "security": "starttls",
        "from_email": "noreply@a.example",
        "from_name": "A",
        "fallback": None,
        "updated_at": T0,
    },
    {
        "client_id": B,
        "host": "smtp.b.example",
        "port": 25,
        "username": None,
        "password_sealed": None,
        "security": "none",
        "from_email": "noreply@b.example",
        "from_name": None,
        "fallback": FALLBACK,
        "updated_at": T0,
    },
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server_url: str
) -> AsyncIterator[str]:
    """An empty database of this test alone."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'email.db'}"
        return
    name = f"chatapi_mig15_{secrets.token_hex(4)}"
    url = await create_pg_database(pg_server_url, name)
    try:
        yield url
    finally:
        await drop_pg_database(pg_server_url, name)


async def _seed(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(CLIENTS),
                [
                    {"id": c, "name": c, "slug": c.lower(), "settings": {}, "created_at": T0}
                    for c in (A, B)
                ],
            )
            await conn.execute(sa.insert(EMAIL_CONFIGS), CONFIGS)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _rows(url: str) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(EMAIL_CONFIGS))).mappings().all()
            return sorted((dict(r) for r in rows), key=lambda r: str(r["client_id"]))
    finally:
        await engine.dispose()


async def test_email_configs_become_smtp_providers_and_come_back_down(fresh_url: str) -> None:
    await asyncio.to_thread(upgrade, fresh_url, BEFORE)
    await _seed(fresh_url)

    await asyncio.to_thread(upgrade, fresh_url, "head")

    assert "email_configs" not in await _tables(fresh_url)
    db = Database(fresh_url)
    smtp = SmtpProviderType()
    try:
        async with db.read_session() as session:
            a = await email_configs.get(session, A)
            b = await email_configs.get(session, B)
            route_a = await route_for_delivery(session, BOX, {"smtp": smtp}, A, "email")
            route_b = await route_for_delivery(session, BOX, {"smtp": smtp}, B, "email")
    finally:
        await db.dispose()
        await smtp.aclose()
    assert a is not None and b is not None
    assert (a.host, a.port, a.username, a.security, a.from_name) == (
        "smtp.a.example",
        587,
        "relay",
        "starttls",
        "A",
    )
    assert a.password_sealed == SEALED and a.fallback is None  # carried over as it was
    assert b.password_sealed is None and b.fallback == FALLBACK
    # The delivery's route: the same servers, passwords opened by the same SecretBox.
    assert [p.name for p in route_a.providers] == ["smtp"]
    assert [p.name for p in route_b.providers] == ["smtp", "smtp-fallback"]
    [primary_a] = route_a.providers
    assert primary_a.settings.server().password == "primary-pw"  # type: ignore[attr-defined]
    assert route_b.providers[1].settings.server().password == "fallback-pw"  # type: ignore[attr-defined]

    await asyncio.to_thread(downgrade, fresh_url, BEFORE)
    assert await _rows(fresh_url) == CONFIGS
