"""Open sockets follow their key: a rotation's grace ending, an expiry or a revocation that
no broadcast announced closes them (4403), while live keys' sockets stay open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import col

from app.auth.models import ApiKey
from app.auth.secrets import parse_key
from app.core.clock import ManualClock, utcnow
from app.main import create_app
from app.realtime.hub import Hub
from tests.conftest import make_settings
from tests.support.api import Api
from tests.support.inprocess import serve_in_process
from tests.support.realtime import WsClient, wait_for


@dataclass
class Served:
    app: FastAPI
    base: str
    api: Api

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub


@pytest.fixture(scope="module")
async def served(sqlite_url: str) -> AsyncIterator[Served]:
    """One in-process server for the module; every test makes its own tenant."""
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        yield Served(app, base, Api(http, app=app))


async def _closed(ws: WsClient) -> tuple[int | None, str | None]:
    await asyncio.wait_for(ws.conn.wait_closed(), 5)
    return ws.conn.close_code, ws.conn.close_reason


async def _still_open(ws: WsClient) -> None:
    """The socket answers a ping: it is open (the sentinel after a re-check)."""
    assert (await ws.request("ping", {}))["event"] == "pong"


async def _set_row(served: Served, key: str, **values: object) -> None:
    """Change a key's row behind the service's back: no broadcast announces it."""
    parts = parse_key(key)
    assert parts is not None
    async with served.app.state.db.session() as session:
        await session.execute(update(ApiKey).where(col(ApiKey.id) == parts.key_id).values(**values))
        await session.commit()


async def test_a_master_socket_closes_when_its_rotation_grace_ends(
    served: Served, clock: ManualClock
) -> None:
    tenant = await served.api.tenant()
    ws = await WsClient.open(served.base, tenant.master_key)
    try:
        r = await served.api.http.post(
            "/api/v1/clients/me/rotate-key", json={"grace_seconds": 60}, headers=tenant.auth
        )
        assert r.status_code == 200
        clock.advance(59)
        await served.hub.close_expired()
        await _still_open(ws)
        clock.advance(2)
        await served.hub.close_expired()
        code, reason = await _closed(ws)
        assert code == 4403
        assert reason is not None and "expired" in reason
    finally:
        await ws.close()


async def test_a_key_revoked_without_a_broadcast_is_closed_by_the_recheck(
    served: Served, clock: ManualClock
) -> None:
    tenant = await served.api.tenant()
    user = await served.api.user(tenant)
    key = await served.api.login(tenant, user["id"])
    ws = await WsClient.open(served.base, key)
    try:
        await _set_row(served, key, revoked_at=utcnow())
        await served.hub.recheck_keys()
        code, reason = await _closed(ws)
        assert code == 4403
        assert reason is not None and "revoked" in reason
    finally:
        await ws.close()


async def test_a_new_expiry_without_a_broadcast_is_learned_by_the_recheck(
    served: Served, clock: ManualClock
) -> None:
    tenant = await served.api.tenant()
    ws = await WsClient.open(served.base, tenant.master_key)
    try:
        await _set_row(served, tenant.master_key, expires_at=utcnow() + timedelta(seconds=30))
        await served.hub.recheck_keys()
        await _still_open(ws)
        clock.advance(31)
        await served.hub.close_expired()
        code, _ = await _closed(ws)
        assert code == 4403
    finally:
        await ws.close()


async def test_a_live_keys_socket_stays_open_through_the_recheck(
    served: Served, clock: ManualClock
) -> None:
    tenant = await served.api.tenant()
    user = await served.api.user(tenant)
    room = await served.api.room(tenant, member_ids=[user["id"]])
    key = await served.api.login(tenant, user["id"], ttl_seconds=3600)
    ws = await WsClient.open(served.base, key)
    try:
        clock.advance(3000)
        await served.hub.recheck_keys()
        await served.hub.close_expired()
        r = await served.api.send(tenant, room["id"], "still here")
        assert r.status_code == 201
        await wait_for(ws.events, lambda e: e[0] == "message.created")
        await _still_open(ws)
        assert ws.conn.close_code is None
    finally:
        await ws.close()


async def test_the_periodic_recheck_closes_a_silently_revoked_keys_socket(sqlite_url: str) -> None:
    app = create_app(
        make_settings(sqlite_url, KEY_RECHECK_INTERVAL_SECONDS=0.1), run_embedded_worker=False
    )
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        served = Served(app, base, Api(http, app=app))
        tenant = await served.api.tenant()
        user = await served.api.user(tenant)
        key = await served.api.login(tenant, user["id"])
        ws = await WsClient.open(base, key)
        try:
            await _set_row(served, key, revoked_at=utcnow())
            # Nobody calls the hub: its own re-check loop must find the revocation.
            code, reason = await _closed(ws)
            assert code == 4403
            assert reason is not None and "revoked" in reason
        finally:
            await ws.close()
