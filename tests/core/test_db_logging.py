"""LOG_LEVEL=DEBUG never writes SQL parameters or rows: they carry sealed secrets and bcrypt
hashes. Statements may be logged (they are what a person debugging wants); values never."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.db import Database
from app.core.native_sql import driver_query
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.api import Api

PASSWORD = "smtp-pa55word-" + secrets.token_hex(4)


@pytest.fixture
async def debug_api(db_url: str, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Api]:
    """The app as `LOG_LEVEL=DEBUG` runs it, every record captured."""
    app: FastAPI = create_app(make_settings(db_url, LOG_LEVEL="DEBUG"), run_embedded_worker=False)
    # create_app installed its own root handler in place of pytest's: capture again.
    root = logging.getLogger()
    root.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        async for http in app_client(app):
            yield Api(http, app=app)
    finally:
        root.removeHandler(caplog.handler)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    # The message and every field a formatter would print (JSON logs print `extra`s too).
    return "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)


async def test_debug_logs_never_show_sealed_secrets_or_key_hashes(
    debug_api: Api, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = debug_api
    tenant = await api.tenant()
    config = {
        "host": "93.184.215.14",  # public and literal: no DNS in tests
        "port": 587,
        "username": "relay",
        "password": PASSWORD,
        "security": "starttls",
        "from_email": "noreply@shop.example",
    }
    r = await api.http.put("/api/v1/email-config", json=config, headers=tenant.auth)
    assert r.status_code == 200, r.text
    assert (await api.http.get("/api/v1/email-config", headers=tenant.auth)).status_code == 200
    assert (await api.http.get("/api/v1/clients/me", headers=tenant.auth)).status_code == 200

    db = Database(db_url)
    try:
        async with db.read_session() as session:
            # /email-config saves the `smtp` provider; its password is sealed in its secrets.
            stored = (
                await session.execute(
                    text(
                        "SELECT secrets_sealed FROM providers"
                        " WHERE client_id = :c AND name = 'smtp'"
                    ),
                    {"c": tenant.id},
                )
            ).scalar_one()
            sealed = (json.loads(stored) if isinstance(stored, str) else stored)["password"]
            hashes = (
                await session.execute(
                    text("SELECT secret_hash FROM api_keys WHERE client_id = :c"), {"c": tenant.id}
                )
            ).scalars()
            secrets_at_rest = [sealed, *hashes]
    finally:
        await db.dispose()
    assert len(secrets_at_rest) == 2
    # What LOG_LEVEL=DEBUG lets through reaches the capture.
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    logged = _logged(caplog)
    for value in secrets_at_rest:
        assert value not in logged
    assert PASSWORD not in logged
    assert tenant.master_key.rsplit("_", 1)[1] not in logged


async def test_a_raw_driver_query_at_debug_never_logs_its_parameters(
    debug_api: Api, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "sealed-" + secrets.token_hex(8)
    db = Database(db_url)
    try:
        async with db.driver_connection() as driver:
            placeholder = "?" if db.dialect_name == "sqlite" else "$1::text"
            assert (await driver_query(driver)(f"SELECT {placeholder}", [marker]))[0][0] == marker
    finally:
        await db.dispose()
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    assert marker not in _logged(caplog)


async def test_sql_logging_turned_on_shows_statements_without_their_parameters(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An operator debugging with SQLAlchemy's statement log on (what `echo` does).
    marker = "sealed-" + secrets.token_hex(8)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    db = Database(db_url)
    try:
        async with db.session() as session:
            row = await session.execute(text("SELECT :v AS probe"), {"v": marker})
            assert row.scalar_one() == marker
    finally:
        await db.dispose()
    assert "SELECT" in _logged(caplog) and "AS probe" in _logged(caplog)
    assert marker not in _logged(caplog)


async def test_a_database_error_never_carries_its_parameters(db_url: str) -> None:
    # Errors are logged with their message and go to Sentry: SQLAlchemy would append the
    # statement's parameters to it (here a sealed value beside a duplicate key).
    marker = "sealed-" + secrets.token_hex(8)
    db = Database(db_url)
    try:
        async with db.session() as session:
            with pytest.raises(DBAPIError) as caught:
                await session.execute(
                    text(
                        "INSERT INTO clients (id, name, slug, settings, created_at) VALUES "
                        "(:id, :name, :slug, '{}', CURRENT_TIMESTAMP), "
                        "(:id, :name, :slug, '{}', CURRENT_TIMESTAMP)"
                    ),
                    {"id": "dup" + secrets.token_hex(4), "name": marker, "slug": marker},
                )
            await session.rollback()
    finally:
        await db.dispose()
    assert "INSERT INTO clients" in str(caught.value)
    assert marker not in str(caught.value)
