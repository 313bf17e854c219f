"""Connect tokens open one socket (Socket.IO or WebSocket), once, before they expire, and
never a REST call; a device's relogin closes the sockets of its old key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import socketio
import websockets
from fastapi import FastAPI

from app.core.clock import ManualClock
from app.main import create_app
from tests.conftest import make_settings
from tests.support.api import Api, Tenant, bearer
from tests.support.inprocess import serve_in_process
from tests.support.realtime import WsClient, wait_for


@dataclass
class Served:
    app: FastAPI
    base: str
    api: Api


@pytest.fixture(scope="module")
async def served(sqlite_url: str) -> AsyncIterator[Served]:
    """One in-process server for the module; every test makes its own tenant."""
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        yield Served(app, base, Api(http, app=app))


async def _mint(api: Api, key: str, **body: Any) -> dict[str, Any]:
    r = await api.http.post("/api/v1/auth/connect-token", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _ws(base: str, token: str) -> WsClient:
    url = base.replace("http://", "ws://") + f"/api/v1/websocket/open?token={token}"
    return WsClient(await websockets.connect(url))


async def _refused_ws(base: str, token: str) -> str:
    ws = await _ws(base, token)
    await asyncio.wait_for(ws.conn.wait_closed(), 5)
    assert ws.conn.close_code == 4401
    await ws.close()
    return str(ws.conn.close_reason)


async def _sio(base: str, token: str, refusals: list[Any] | None = None) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    if refusals is not None:
        sio.on("connect_error", refusals.append)
    await sio.connect(
        base, socketio_path="sockets", auth={"token": token}, transports=["websocket"]
    )
    return sio


async def _scene(api: Api) -> tuple[Tenant, dict[str, Any], str]:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"], device_id="server")
    return tenant, user, key


async def test_a_websocket_token_opens_once(served: Served) -> None:
    _, user, key = await _scene(served.api)
    minted = await _mint(served.api, key)
    ws = await _ws(served.base, minted["token"])
    try:
        _, connected = await wait_for(ws.events, lambda e: e[0] == "connected")
        assert connected["user_id"] == user["id"]
    finally:
        await ws.close()
    assert "already used" in await _refused_ws(served.base, minted["token"])


async def test_a_socketio_token_opens_once(served: Served) -> None:
    tenant, user, _ = await _scene(served.api)
    minted = await _mint(served.api, tenant.master_key, user_id=user["id"])
    sio = await _sio(served.base, minted["token"])
    await sio.disconnect()
    refusals: list[Any] = []
    with pytest.raises(socketio.exceptions.ConnectionError):
        await _sio(served.base, minted["token"], refusals)
    assert "already used" in str(refusals), refusals


async def test_an_expired_token_is_refused(served: Served, clock: ManualClock) -> None:
    _, _, key = await _scene(served.api)
    minted = await _mint(served.api, key)
    clock.advance(served.app.state.settings.CONNECT_TOKEN_TTL_SECONDS + 1)
    assert "expired" in await _refused_ws(served.base, minted["token"])


async def test_a_token_is_refused_on_rest(served: Served) -> None:
    _, _, key = await _scene(served.api)
    minted = await _mint(served.api, key)
    r = await served.api.http.get("/api/v1/auth/me", headers=bearer(minted["token"]))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert "only opens a socket" in r.json()["detail"]
    # Refused on REST, it is not spent: the socket still opens with it.
    ws = await _ws(served.base, minted["token"])
    try:
        await wait_for(ws.events, lambda e: e[0] == "connected")
    finally:
        await ws.close()


async def test_scopes_of_the_minting_key_carry_over(served: Served) -> None:
    tenant, user, _ = await _scene(served.api)
    room = await served.api.room(tenant, member_ids=[user["id"]])
    narrow = await served.api.login(
        tenant, user["id"], device_id="narrow", scopes=["notifications:read"]
    )
    minted = await _mint(served.api, narrow)
    ws = await _ws(served.base, minted["token"])
    try:
        await wait_for(ws.events, lambda e: e[0] == "connected")
        reply = await ws.request("message.send", {"room_id": room["id"], "content": "hi"})
        assert reply["event"] == "error" and reply["data"]["status"] == 403, reply
    finally:
        await ws.close()


async def test_a_user_key_mints_for_itself_only(served: Served) -> None:
    tenant, _, key = await _scene(served.api)
    other = await served.api.user(tenant)
    r = await served.api.http.post(
        "/api/v1/auth/connect-token", json={"user_id": other["id"]}, headers=bearer(key)
    )
    assert r.status_code == 403
    r = await served.api.http.post(
        "/api/v1/auth/connect-token", json={"user_id": "nope"}, headers=tenant.auth
    )
    assert r.status_code == 404


async def test_a_relogin_on_a_device_closes_only_that_devices_socket(served: Served) -> None:
    tenant = await served.api.tenant()
    user = await served.api.user(tenant)
    phone = await served.api.login(tenant, user["id"], device_id="phone")
    laptop = await served.api.login(tenant, user["id"], device_id="laptop")
    phone_ws = await WsClient.open(served.base, phone)
    laptop_ws = await WsClient.open(served.base, laptop)
    try:
        await served.api.login(tenant, user["id"], device_id="phone")
        await asyncio.wait_for(phone_ws.conn.wait_closed(), 5)
        assert phone_ws.conn.close_code == 4403
        # The sentinel: the laptop's socket answers after the phone's closed.
        assert (await laptop_ws.request("ping", {}))["event"] == "pong"
    finally:
        await phone_ws.close()
        await laptop_ws.close()


async def test_revoking_the_minting_key_closes_the_tokens_socket(served: Served) -> None:
    _, _, key = await _scene(served.api)
    minted = await _mint(served.api, key)
    ws = await _ws(served.base, minted["token"])
    try:
        await wait_for(ws.events, lambda e: e[0] == "connected")
        assert (
            await served.api.http.post("/api/v1/auth/logout", headers=bearer(key))
        ).status_code == 204
        await asyncio.wait_for(ws.conn.wait_closed(), 5)
        assert ws.conn.close_code == 4403
    finally:
        await ws.close()
