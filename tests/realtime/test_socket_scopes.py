"""Scopes hold on sockets as on REST: client events need the scope of their REST twin, and a
connection receives only the events its key's scopes allow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.principal import Scope
from app.main import create_app
from app.realtime.events import user_target
from tests.conftest import make_settings
from tests.support.api import Api, Tenant, bearer
from tests.support.inprocess import serve_in_process
from tests.support.realtime import WsClient, wait_for

ALL = [s.value for s in Scope]

# What the socket asks for, written down here independently of the app's table: each event
# needs the scope of the REST route doing the same (POST …/messages, GET …/messages,
# POST …/read); typing writes into the message stream.
NEEDS: dict[str, str | None] = {
    "ping": None,
    "message.send": "messages:write",
    "typing": "messages:write",
    "read": "messages:read",
    "sync": "messages:read",
    "subscribe": None,  # master-only whatever the scopes
    "unsubscribe": None,
}


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


@dataclass
class World:
    tenant: Tenant
    user: dict[str, Any]
    other: dict[str, Any]
    other_key: str
    room: dict[str, Any]


async def _world(api: Api) -> World:
    tenant = await api.tenant()
    user = await api.user(tenant)
    other = await api.user(tenant)
    other_key = await api.login(tenant, other["id"])
    room = await api.room(tenant, member_ids=[user["id"], other["id"]])
    return World(tenant, user, other, other_key, room)


def _payload(event: str, room_id: str) -> dict[str, Any]:
    return {
        "ping": {},
        "message.send": {"room_id": room_id, "content": "hi"},
        "typing": {"room_id": room_id},
        "read": {"room_id": room_id, "seq": 0},
        "sync": {"room_id": room_id, "after_seq": 0},
        "subscribe": {"room_id": room_id},
        "unsubscribe": {"room_id": room_id},
    }[event]


def test_the_app_table_names_every_client_event() -> None:
    from app.auth.scopes import CLIENT_EVENT_SCOPES

    assert CLIENT_EVENT_SCOPES == NEEDS


@pytest.mark.parametrize("scope", ALL)
@pytest.mark.parametrize("event", list(NEEDS))
async def test_each_client_event_needs_the_scope_of_its_rest_twin(
    served: Served, event: str, scope: str
) -> None:
    world = await _world(served.api)
    key = await served.api.login(world.tenant, world.user["id"], scopes=[scope])
    ws = await WsClient.open(served.base, key)
    try:
        frame = await ws.request(event, _payload(event, world.room["id"]))
    finally:
        await ws.close()
    needed = NEEDS[event]
    if event in ("subscribe", "unsubscribe"):
        assert frame["event"] == "error" and frame["data"]["status"] == 403
        assert "master" in frame["data"]["detail"]
    elif needed is None or needed == scope:
        assert frame["event"] in ("ack", "pong"), frame
    else:
        assert frame["event"] == "error", frame
        assert frame["data"]["status"] == 403
        assert f"`{needed}`" in frame["data"]["detail"]


async def test_a_key_without_messages_read_gets_no_message_events(served: Served) -> None:
    api = served.api
    world = await _world(api)
    key = await api.login(world.tenant, world.user["id"], scopes=["rooms:read"])
    ws = await WsClient.open(served.base, key)
    try:
        # Another member types, reads and posts: all message-stream events…
        other = await WsClient.open(served.base, world.other_key)
        assert (await other.request("typing", {"room_id": world.room["id"]}))["event"] == "ack"
        r = await api.send(world.tenant, world.room["id"], "secret")
        assert r.status_code == 201
        marker = await other.request("read", {"room_id": world.room["id"], "seq": 1})
        assert marker["event"] == "ack"
        await other.close()
        # …then a room event this key may see: the sentinel.
        newcomer = await api.user(world.tenant)
        added = await api.http.post(
            f"/api/v1/rooms/{world.room['id']}/members",
            json={"user_ids": [newcomer["id"]]},
            headers=world.tenant.auth,
        )
        assert added.status_code == 200, added.text
        await wait_for(ws.events, lambda e: e[0] == "room.member_joined")
        names = [name for name, _ in ws.events]
        assert "message.created" not in names
        assert "typing" not in names and "read" not in names
    finally:
        await ws.close()


async def test_a_key_without_room_scopes_is_not_subscribed_to_its_rooms(served: Served) -> None:
    api = served.api
    world = await _world(api)
    key = await api.login(
        world.tenant, world.user["id"], scopes=["messages:write", "notifications:read"]
    )
    ws = await WsClient.open(served.base, key)
    try:
        r = await api.send(world.tenant, world.room["id"], "not for this key")
        assert r.status_code == 201
        # The sentinel: a notification on the user's own target, which this key may see.
        await served.app.state.bus.publish(
            world.tenant.id, user_target(world.user["id"]), "notification", {"n": 1}
        )
        await wait_for(ws.events, lambda e: e[0] == "notification")
        assert "message.created" not in [name for name, _ in ws.events]
        # It may still write: message.send and typing need only messages:write.
        sent = await ws.request("message.send", {"room_id": world.room["id"], "content": "w"})
        assert sent["event"] == "ack", sent
    finally:
        await ws.close()


async def test_notifications_need_notifications_read(served: Served) -> None:
    api = served.api
    world = await _world(api)
    key = await api.login(world.tenant, world.user["id"], scopes=["messages:read"])
    ws = await WsClient.open(served.base, key)
    try:
        await served.app.state.bus.publish(
            world.tenant.id, user_target(world.user["id"]), "notification", {"n": 1}
        )
        r = await api.send(world.tenant, world.room["id"], "sentinel")
        assert r.status_code == 201
        await wait_for(ws.events, lambda e: e[0] == "message.created")
        assert "notification" not in [name for name, _ in ws.events]
    finally:
        await ws.close()


async def test_a_key_with_every_scope_still_receives_everything(served: Served) -> None:
    api = served.api
    world = await _world(api)
    key = await api.login(world.tenant, world.user["id"])
    ws = await WsClient.open(served.base, key)
    try:
        await served.app.state.bus.publish(
            world.tenant.id, user_target(world.user["id"]), "notification", {"n": 1}
        )
        r = await api.send(world.tenant, world.room["id"], "hello")
        assert r.status_code == 201
        await wait_for(ws.events, lambda e: e[0] == "message.created")
        assert "notification" in [name for name, _ in ws.events]
        me = await api.http.get("/api/v1/auth/me", headers=bearer(key))
        assert sorted(me.json()["scopes"]) == sorted(ALL)
    finally:
        await ws.close()
