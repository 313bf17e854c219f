"""Health: live, ready naming its failing check, the alias, and the docs endpoints."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import app_client, create_pg_database, make_settings


async def test_live_and_its_alias_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.get("/api/v1/utils/health-check")).json() == {"status": "ok"}


async def test_ready_reports_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


async def test_ready_checks_redis_when_configured(
    sqlite_url: str, redis_server_url: str, redis_prefix: str
) -> None:
    settings = make_settings(sqlite_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=redis_prefix)
    async for client in app_client(create_app(settings)):
        response = await client.get("/health/ready")
        assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_ready_names_redis_when_it_does_not_answer(sqlite_url: str) -> None:
    from tests.support.processes import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    async for client in app_client(create_app(make_settings(sqlite_url, REDIS_URL=dead))):
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["checks"]["redis"].startswith("failed")
        assert response.json()["detail"] == "not ready: redis"


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = await client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "ChatAPI"
    schemas = spec.json()["components"]["schemas"]
    for name in ("MessageCreate", "RoomCreate", "UserUpsert", "LoginRequest"):
        assert schemas[name]["examples"], f"{name} has no example in the docs"
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200


@pytest.mark.slow
async def test_ready_turns_503_when_the_database_stops_and_recovers(tmp_path: Path) -> None:
    from scripts.throwaway import start_postgres

    server = await asyncio.to_thread(start_postgres, tmp_path / "pg")
    try:
        url = await create_pg_database(server.url, "ready_probe")
        async for client in app_client(create_app(make_settings(url))):
            assert (await client.get("/health/ready")).status_code == 200
            await asyncio.to_thread(server.stop)
            response = await client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["detail"] == "not ready: database"
            assert response.json()["checks"]["database"].startswith("failed")
            await asyncio.to_thread(server.start_again)
            deadline = asyncio.get_running_loop().time() + 15
            while (await client.get("/health/ready")).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, "ready did not recover"
                await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(server.stop)


async def test_each_request_logs_one_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="chatapi.request"):
        await client.get("/health/live", headers={"X-Request-ID": "req-1"})
    lines = [r for r in caplog.records if r.name == "chatapi.request"]
    assert len(lines) == 1
    record = lines[0].__dict__
    assert record["method"] == "GET"
    assert record["path"] == "/health/live"
    assert record["status"] == 200
    assert record["request_id"] == "req-1"
    assert record["duration_ms"] >= 0
