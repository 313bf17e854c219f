"""The connect path against an in-process uvicorn server: handshake ordering, failures
during registration, and frames the WebSocket does not accept."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import socketio
import websockets
from engineio import packet as eio_packet
from fastapi import FastAPI

from app.core.redis import create_redis
from app.main import create_app
from app.realtime.bus import EventBus
from app.realtime.connection import CLOSE_SLOW_CONSUMER, Connection
from app.realtime.engineio_direct import direct_websocket
from app.realtime.events import room_target
from app.realtime.hub import Hub
from app.realtime.presence import RedisPresence
from tests.conftest import ADMIN_KEY, make_settings
from tests.support.processes import free_port
from tests.support.realtime import (
    Scene,
    SioClient,
    WsClient,
    connect_then_publish_every_time,
    make_scene,
    serving,
    until,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def live(pg_url: str) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app served by uvicorn in this event loop, and its base URL."""
    app = create_app(make_settings(pg_url), run_embedded_worker=False)
    async with serving(app) as base:
        yield app, base


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _unreachable_redis_presence() -> RedisPresence:
    # Redis going away in the middle of a connect: nothing listens on this port.
    return RedisPresence(create_redis(f"redis://127.0.0.1:{free_port()}/0"), "gone:")


async def _scene_with_client_id(http: httpx.AsyncClient, base: str) -> tuple[Scene, str]:
    """A scene (tenant, users, room) and its tenant's client id."""
    scene = await make_scene(http, base, ADMIN_KEY)
    me = await http.get(f"{base}/api/v1/auth/me", headers=scene.master_auth)
    return scene, str(me.json()["client_id"])


async def test_every_event_published_on_the_bus_right_after_a_connect_returns_arrives(
    live: tuple[FastAPI, str], http: httpx.AsyncClient
) -> None:
    app, base = live
    scene, client_id = await _scene_with_client_id(http, base)
    bus: EventBus = app.state.bus

    async def publish(tag: str) -> None:
        # The in-memory bus, the instant the handshake completed: no database write first.
        await bus.publish(
            client_id, room_target(scene.room["id"]), "message.created", {"content": tag}
        )

    await connect_then_publish_every_time([base], scene.keys[0], publish)


async def test_socketio_connect_packet_comes_before_any_event(
    live: tuple[FastAPI, str], http: httpx.AsyncClient
) -> None:
    app, base = live
    scene = await make_scene(http, base, ADMIN_KEY)
    hub: Hub = app.state.hub

    async def dawdle(conn: Connection) -> None:
        # Yield to the loop many times during the connect: a writer started too early
        # gets every chance to send its first frame before Socket.IO's CONNECT.
        for _ in range(20):
            await asyncio.sleep(0)

    hub.on_connect(dawdle)
    url = base.replace("http://", "ws://") + "/sockets/?EIO=4&transport=websocket"
    async with websockets.connect(url) as raw:
        opened = await raw.recv()
        assert str(opened).startswith("0{")
        await raw.send("40" + orjson.dumps({"api_key": scene.keys[0]}).decode())
        socketio_packets: list[str] = []
        while not any(p.startswith("42") for p in socketio_packets):
            packet = str(await asyncio.wait_for(raw.recv(), 5))
            if packet.startswith("4"):  # Engine.IO MESSAGE: a Socket.IO packet
                socketio_packets.append(packet)
        assert socketio_packets[0].startswith("40{"), socketio_packets
        assert socketio_packets[1].startswith('42["connected"'), socketio_packets


async def test_a_socketio_client_that_stops_reading_is_disconnected_as_a_slow_consumer(
    live: tuple[FastAPI, str], http: httpx.AsyncClient
) -> None:
    app, base = live
    scene, client_id = await _scene_with_client_id(http, base)
    hub: Hub = app.state.hub
    bus: EventBus = app.state.bus
    url = base.replace("http://", "ws://") + "/sockets/?EIO=4&transport=websocket"
    # No compression and a one-message client buffer: once the socket buffers are full,
    # the server's writes stall and the connection's bounded send queue fills up.
    async with websockets.connect(url, compression=None, max_queue=1) as raw:
        assert str(await raw.recv()).startswith("0{")
        await raw.send("40" + orjson.dumps({"api_key": scene.keys[0]}).decode())
        while not str(await asyncio.wait_for(raw.recv(), 5)).startswith('42["connected"'):
            pass
        assert hub.connection_count == 1
        pad = base64.b64encode(os.urandom(12_000)).decode()  # incompressible anyway
        target = room_target(scene.room["id"])
        for i in range(5_000):  # ~80 MB at most; the close comes after a few MB
            if hub.connection_count == 0:
                break
            await bus.publish(client_id, target, "message.created", {"i": i, "pad": pad})
            await asyncio.sleep(0)
        assert hub.connection_count == 0, "the client that does not read was never let go"
        assert hub.listener_count == 0
        # Reading again, the client finds out why, after what was already queued, and is
        # disconnected from the namespace (Socket.IO DISCONNECT).
        packet = ""
        while not packet.startswith('42["disconnect_reason"'):
            packet = str(await asyncio.wait_for(raw.recv(), 10))
        assert orjson.loads(packet[2:]) == [
            "disconnect_reason",
            {"code": CLOSE_SLOW_CONSUMER, "reason": "slow consumer: events were not read in time"},
        ]
        assert await asyncio.wait_for(raw.recv(), 10) == "41"


async def test_a_failed_websocket_registration_closes_with_1011_and_leaks_nothing(
    live: tuple[FastAPI, str], http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, base = live
    scene = await make_scene(http, base, ADMIN_KEY)
    hub: Hub = app.state.hub
    monkeypatch.setattr(hub, "_presence", _unreachable_redis_presence())
    url = base.replace("http://", "ws://") + f"/api/v1/websocket/open?api_key={scene.keys[0]}"
    ws = await websockets.connect(url)
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 1011 and ws.close_reason
    assert hub.connection_count == 0
    assert hub.listener_count == 0


async def test_a_failed_socketio_registration_is_refused_and_leaks_nothing(
    live: tuple[FastAPI, str], http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, base = live
    scene = await make_scene(http, base, ADMIN_KEY)
    hub: Hub = app.state.hub
    monkeypatch.setattr(hub, "_presence", _unreachable_redis_presence())
    client = SioClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.sio.connect(
            base, socketio_path="sockets", auth={"api_key": scene.keys[0]}, transports=["websocket"]
        )
    _, reason = await wait_for(client.events, lambda e: e[0] == "connect_error")
    assert "try again" in str(reason)
    assert hub.connection_count == 0
    assert hub.listener_count == 0


async def test_a_binary_frame_gets_an_error_reply_and_the_connection_lives_on(
    live: tuple[FastAPI, str], http: httpx.AsyncClient
) -> None:
    app, base = live
    scene = await make_scene(http, base, ADMIN_KEY)
    ws = await WsClient.open(base, scene.keys[0])
    try:
        await ws.conn.send(b"\x00\x01binary")
        _, problem = await wait_for(ws.events, lambda e: e[0] == "error")
        assert problem["status"] == 400 and "text" in problem["detail"]
        pong = await ws.request("ping", {})
        assert pong["event"] == "pong"
    finally:
        await ws.close()
    hub: Hub = app.state.hub
    # The server finishes its cleanup after the close handshake.
    await until(lambda: hub.connection_count == 0, "the server to forget the connection")
    assert hub.listener_count == 0


async def _raw_socketio(base: str, key: str) -> websockets.ClientConnection:
    """A raw Engine.IO websocket, connected to the default namespace and past `connected`."""
    url = base.replace("http://", "ws://") + "/sockets/?EIO=4&transport=websocket"
    raw = await websockets.connect(url, compression=None)
    assert str(await raw.recv()).startswith("0{")
    await raw.send("40" + orjson.dumps({"api_key": key}).decode())
    while not str(await asyncio.wait_for(raw.recv(), 5)).startswith('42["connected"'):
        pass
    return raw


async def test_socketio_events_written_directly_keep_their_order_among_engineio_packets(
    live: tuple[FastAPI, str], http: httpx.AsyncClient
) -> None:
    app, base = live
    scene, client_id = await _scene_with_client_id(http, base)
    bus: EventBus = app.state.bus
    target = room_target(scene.room["id"])
    raw = await _raw_socketio(base, scene.keys[0])
    try:
        count = 300
        for i in range(count):
            if i % 25 == 0:
                # A client `ping` with an ack: Engine.IO's queue gets a `pong` and an ACK
                # in the middle of our events.
                await raw.send("42" + str(i) + '["ping",{}]')
            await bus.publish(client_id, target, "message.created", {"i": i})
            if i % 7 == 0:
                await asyncio.sleep(0)
        seen: list[int] = []
        while len(seen) < count:
            packet = str(await asyncio.wait_for(raw.recv(), 10))
            if packet.startswith('42["message.created"'):
                seen.append(orjson.loads(packet[2:])[1]["i"])
        assert seen == list(range(count))
        # The direct path was taken: nothing of ours is left waiting on Engine.IO.
        sio = app.state.sio
        (socket,) = sio.eio.sockets.values()
        assert direct_websocket(socket) is not None
    finally:
        await raw.close()


async def test_socketio_event_frames_are_the_ones_engineio_would_send(
    live: tuple[FastAPI, str], http: httpx.AsyncClient
) -> None:
    app, base = live
    scene, client_id = await _scene_with_client_id(http, base)
    bus: EventBus = app.state.bus
    raw = await _raw_socketio(base, scene.keys[0])
    try:
        data = {"content": 'héllo \u2603 "quoted"', "n": [1, 2.5, None, True]}
        for _ in range(3):  # the first may go through Engine.IO's queue, the rest directly
            await bus.publish(client_id, room_target(scene.room["id"]), "message.created", data)
        # What python-engineio's own send of that Socket.IO packet puts on the wire.
        expected = eio_packet.Packet(
            eio_packet.MESSAGE, data="2" + orjson.dumps(["message.created", data]).decode()
        ).encode()
        frames: list[str] = []
        while len(frames) < 3:
            packet = str(await asyncio.wait_for(raw.recv(), 5))
            if not packet.startswith('42["presence"'):  # its own online announcement
                frames.append(packet)
        assert frames == [expected] * 3
    finally:
        await raw.close()
