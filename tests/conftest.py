"""Fixtures name the real servers they use: PostgreSQL and Redis from scripts/test.sh.

`TEST_DATABASE_URL` / `TEST_REDIS_URL` point at servers; this run makes its own database
and Redis key prefix there and drops them at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.core.clock import ManualClock, using_clock
from app.core.config import Settings
from app.core.migrations import upgrade
from app.main import create_app
from tests.support.api import Api

RUN_ID = secrets.token_hex(4)
ADMIN_KEY = "admin-key-for-tests-" + secrets.token_hex(8)


def _server_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        pytest.skip(f"{name} is not set: run the suite with scripts/test.sh")
    return url


def asyncpg_dsn(url: str) -> str:
    """A plain libpq-style DSN for asyncpg from either URL form."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlalchemy_pg_url(url: str) -> str:
    """The SQLAlchemy asyncpg URL for a plain postgresql:// URL."""
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    base, _, tail = url.rpartition("/")
    query = ("?" + tail.split("?", 1)[1]) if "?" in tail else ""
    return f"{base}/{database}{query}"


async def create_pg_database(server_url: str, name: str) -> str:
    """Create database `name` on the server; return its SQLAlchemy URL."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return sqlalchemy_pg_url(with_database(server_url, name))


async def drop_pg_database(server_url: str, name: str) -> None:
    """Drop database `name`, disconnecting whoever still uses it."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server of this run (a maintenance-database URL)."""
    return _server_url("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
async def pg_url(pg_server_url: str) -> AsyncIterator[str]:
    """This run's own migrated PostgreSQL database."""
    name = f"chatapi_test_{RUN_ID}"
    url = await create_pg_database(pg_server_url, name)
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_pg_database(pg_server_url, name)


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This run's own migrated SQLite file."""
    path = tmp_path_factory.mktemp("sqlite") / "chatapi.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that no test writes to: `own_sqlite_url` copies it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def own_sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database of this test alone (a copy of the template).

    For tests that run the embedded worker: its sweeps read every tenant's due deliveries,
    and in the run's shared database those include whatever earlier tests left pending
    (apps without a worker never deliver), which a worker then works through first.
    """
    path = tmp_path / "own.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis server of this run."""
    return _server_url("TEST_REDIS_URL")


@pytest.fixture(scope="session")
async def redis_prefix(redis_server_url: str) -> AsyncIterator[str]:
    """This run's Redis key prefix; every key under it is deleted at the end."""
    prefix = f"chatapi-test-{RUN_ID}:"
    yield prefix
    redis = Redis.from_url(redis_server_url)
    try:
        async for key in redis.scan_iter(match=f"{prefix}*", count=500):
            await redis.delete(key)
    finally:
        await redis.aclose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test, ignoring the developer's environment and `.env`."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": os.environ.get("TEST_LOG_LEVEL", "WARNING"),
        "REDIS_URL": None,
        "ADMIN_API_KEY": ADMIN_KEY,
        "BCRYPT_ROUNDS": 4,
        # One key for every process of a test (API and workers open each other's secrets).
        "SECRET_KEY": "test-secret-key-" + RUN_ID,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def child_env(settings: Settings) -> dict[str, str]:
    """The environment for a child process running with `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    for key, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[key] = str(value)
    return env


async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client with the app's lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process API client on each database, without the embedded worker."""
    app = create_app(make_settings(db_url), run_embedded_worker=False)
    async for c in app_client(app):
        yield c


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    """A client of the API on each database with helpers to make tenants and users."""
    app = create_app(make_settings(db_url), run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder."""
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A scratch folder for a test's files and child processes."""
    yield tmp_path


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """A clock that stands still until the test moves it (`clock.advance(seconds)`)."""
    with using_clock(ManualClock()) as manual:
        assert isinstance(manual, ManualClock)
        yield manual
