"""WebSocket and Socket.IO against a real `chatapi serve` process (embedded mode)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import socketio
import websockets

from tests.conftest import ADMIN_KEY
from tests.support.processes import ChildProcess, serve_process
from tests.support.realtime import (
    Scene,
    SioClient,
    WsClient,
    connect_then_publish_every_time,
    make_scene,
    until,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildProcess]:
    """One embedded server for this module; every test makes its own tenant."""
    workdir = tmp_path_factory.mktemp("rt-server")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env |= {
        "ADMIN_API_KEY": ADMIN_KEY,
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "INFO",
        "MAX_WS_FRAME_BYTES": "4096",
    }
    with serve_process(env, workdir) as child:
        yield child


@pytest.fixture(scope="module")
def server(server_process: ChildProcess) -> str:
    """The module server's base URL."""
    return server_process.base


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def scene(server: str, http: httpx.AsyncClient) -> Scene:
    return await make_scene(http, server, ADMIN_KEY)


async def _post(http: httpx.AsyncClient, scene: Scene, content: str) -> dict[str, object]:
    r = await http.post(
        f"{scene.base}/api/v1/rooms/{scene.room['id']}/messages",
        json={"content": content},
        headers=scene.master_auth,
    )
    assert r.status_code == 201
    return dict(r.json())


async def test_rest_message_reaches_socketio_and_websocket_clients(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    sio = await SioClient.open(scene.base, scene.keys[0])
    ws = await WsClient.open(scene.base, scene.keys[1])
    try:
        message = await _post(http, scene, "hello both")
        for client in (sio, ws):
            _, data = await wait_for(client.events, lambda e: e[0] == "message.created")
            assert data == message
    finally:
        await sio.close()
        await ws.close()


async def test_every_message_posted_right_after_a_connect_returns_arrives(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    async def post(tag: str) -> None:
        await _post(http, scene, tag)

    await connect_then_publish_every_time([scene.base], scene.keys[0], post)


async def test_message_send_is_acknowledged_with_the_stored_message(scene: Scene) -> None:
    sio = await SioClient.open(scene.base, scene.keys[0])
    ws = await WsClient.open(scene.base, scene.keys[1])
    try:
        ack = await sio.sio.call(
            "message.send", {"room_id": scene.room["id"], "content": "a", "client_message_id": "x1"}
        )
        assert ack["seq"] == 1 and ack["content"] == "a"
        again = await sio.sio.call(
            "message.send", {"room_id": scene.room["id"], "content": "a", "client_message_id": "x1"}
        )
        assert again == ack
        frame = await ws.request("message.send", {"room_id": scene.room["id"], "content": "b"})
        assert frame["event"] == "ack" and frame["data"]["seq"] == 2
        bad = await ws.request("message.send", {"room_id": "nope", "content": "c"})
        assert bad["event"] == "error" and bad["data"]["status"] == 404
        empty = await sio.sio.call("message.send", {"room_id": scene.room["id"], "content": ""})
        assert empty["error"]["status"] == 422
        _, data = await wait_for(
            ws.events, lambda e: e[0] == "message.created" and e[1]["seq"] == 1
        )
        assert data["content"] == "a"
    finally:
        await sio.close()
        await ws.close()


async def test_typing_reaches_others_but_not_the_sender_and_read_is_broadcast(scene: Scene) -> None:
    typist = await SioClient.open(scene.base, scene.keys[0])
    reader = await WsClient.open(scene.base, scene.keys[1])
    try:
        ack = await typist.sio.call("typing", {"room_id": scene.room["id"]})
        assert "error" not in ack
        _, data = await wait_for(reader.events, lambda e: e[0] == "typing")
        assert data == {"room_id": scene.room["id"], "user_id": scene.users[0]["id"]}
        await typist.sio.call("message.send", {"room_id": scene.room["id"], "content": "m"})
        # The message went out on the room after the typing: once the typist has it, its
        # own typing would have arrived before.
        await wait_for(typist.events, lambda e: e[0] == "message.created")
        assert not [e for e in typist.events if e[0] == "typing"]
        frame = await reader.request("read", {"room_id": scene.room["id"], "seq": 1})
        assert frame["data"]["seq"] == 1
        _, data = await wait_for(typist.events, lambda e: e[0] == "read")
        assert data == {"room_id": scene.room["id"], "user_id": scene.users[1]["id"], "seq": 1}
    finally:
        await typist.close()
        await reader.close()


async def test_reconnect_and_sync_returns_exactly_the_missed_messages(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    ws = await WsClient.open(scene.base, scene.keys[0])
    first = await _post(http, scene, "seen")
    await wait_for(ws.events, lambda e: e[0] == "message.created")
    await ws.close()
    missed = [await _post(http, scene, f"missed {i}") for i in range(3)]
    ws = await WsClient.open(scene.base, scene.keys[0])
    sio = await SioClient.open(scene.base, scene.keys[0])
    try:
        frame = await ws.request("sync", {"room_id": scene.room["id"], "after_seq": first["seq"]})
        assert frame["data"]["messages"] == missed
        assert frame["data"]["has_more"] is False
        page = await sio.sio.call("sync", {"room_id": scene.room["id"], "after_seq": 1, "limit": 2})
        assert [m["seq"] for m in page["messages"]] == [2, 3] and page["has_more"] is True
    finally:
        await ws.close()
        await sio.close()


async def test_ping_is_answered_with_pong(scene: Scene) -> None:
    ws = await WsClient.open(scene.base, scene.keys[0])
    try:
        frame = await ws.request("ping", {})
        assert frame["event"] == "pong"
    finally:
        await ws.close()


async def test_a_revoked_keys_sockets_are_closed_within_1s(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    ws = await WsClient.open(scene.base, scene.keys[0])
    sio = await SioClient.open(scene.base, scene.keys[0])
    started = asyncio.get_running_loop().time()
    relogin = await http.post(
        f"{scene.base}/api/v1/auth/login",
        json={"user_id": scene.users[0]["id"]},
        headers=scene.master_auth,
    )
    assert relogin.status_code == 200
    await asyncio.wait_for(ws.conn.wait_closed(), 1.0)
    assert ws.conn.close_code == 4403
    while sio.sio.connected:
        assert asyncio.get_running_loop().time() - started < 1.0, "socket.io stayed connected"
        await asyncio.sleep(0.02)
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_bad_keys_are_refused_with_a_clear_reason(server: str) -> None:
    ws = await websockets.connect(
        server.replace("http", "ws") + "/api/v1/websocket/open?api_key=bad"
    )
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 4401 and ws.close_reason
    client = SioClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.sio.connect(
            server, socketio_path="sockets", auth={"api_key": "bad"}, transports=["websocket"]
        )
    _, reason = await wait_for(client.events, lambda e: e[0] == "connect_error")
    assert "Malformed API key" in str(reason)


async def test_another_tenants_client_receives_nothing(
    server: str, scene: Scene, http: httpx.AsyncClient
) -> None:
    other = await make_scene(http, server, ADMIN_KEY)
    spy_ws = await WsClient.open(server, other.keys[0])
    spy_sio = await SioClient.open(server, other.keys[1])
    mine = await WsClient.open(server, scene.keys[0])
    try:
        await _post(http, scene, "private")
        await wait_for(mine.events, lambda e: e[0] == "message.created")
        sync = await spy_ws.request("sync", {"room_id": scene.room["id"], "after_seq": 0})
        assert sync["event"] == "error" and sync["data"]["status"] == 404
        # Sentinel: a message in the spies' own room, published after the private one.
        await _post(http, other, "sentinel")
        for spy in (spy_ws, spy_sio):
            await wait_for(spy.events, lambda e: e[0] == "message.created")
        contents = [
            d["content"] for e, d in spy_ws.events + spy_sio.events if e == "message.created"
        ]
        assert contents == ["sentinel", "sentinel"]
    finally:
        for c in (spy_ws, mine):
            await c.close()
        await spy_sio.close()


async def test_presence_first_connection_online_last_offline(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    watcher = await WsClient.open(scene.base, scene.keys[0])
    other = scene.users[1]["id"]

    def about_other(e: tuple[str, Any]) -> bool:
        return e[0] == "presence" and e[1]["user_id"] == other

    try:
        first = await SioClient.open(scene.base, scene.keys[1])
        second = await WsClient.open(scene.base, scene.keys[1])
        _, data = await wait_for(watcher.events, about_other)
        assert data == {"room_id": scene.room["id"], "user_id": other, "online": True}
        await first.close()
        await second.close()
        _, data = await wait_for(watcher.events, lambda e: about_other(e) and not e[1]["online"])
        assert data["room_id"] == scene.room["id"]
        # Both closes are counted by now (the offline needs both); a sentinel published
        # after them flushes anything else either close might have announced.
        await _post(http, scene, "sentinel")
        await wait_for(watcher.events, lambda e: e[0] == "message.created")
        told = [d["online"] for e, d in watcher.events if about_other((e, d))]
        assert told == [True, False], "one online for two connections, one offline"
    finally:
        await watcher.close()


async def test_joining_a_room_later_subscribes_live_connections(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    newcomer = (
        await http.post(
            f"{scene.base}/api/v1/users", json={"external_id": "late"}, headers=scene.master_auth
        )
    ).json()
    key = (
        await http.post(
            f"{scene.base}/api/v1/auth/login",
            json={"user_id": newcomer["id"]},
            headers=scene.master_auth,
        )
    ).json()["api_key"]
    ws = await WsClient.open(scene.base, key)
    try:
        await http.post(
            f"{scene.base}/api/v1/rooms/{scene.room['id']}/members",
            json={"user_ids": [newcomer["id"]]},
            headers=scene.master_auth,
        )
        await wait_for(ws.events, lambda e: e[0] == "room.member_joined")
        await _post(http, scene, "welcome")
        _, data = await wait_for(ws.events, lambda e: e[0] == "message.created")
        assert data["content"] == "welcome"
        await http.delete(
            f"{scene.base}/api/v1/rooms/{scene.room['id']}/members/{newcomer['id']}",
            headers=scene.master_auth,
        )
        await wait_for(ws.events, lambda e: e[0] == "room.member_left")
        await _post(http, scene, "after leaving")
        # Sentinel: a room the newcomer is still in, written to after the one it left.
        elsewhere = (
            await http.post(
                f"{scene.base}/api/v1/rooms",
                json={"member_ids": [newcomer["id"]]},
                headers=scene.master_auth,
            )
        ).json()
        await wait_for(
            ws.events,
            lambda e: e[0] == "room.member_joined" and e[1]["room_id"] == elsewhere["id"],
        )
        await http.post(
            f"{scene.base}/api/v1/rooms/{elsewhere['id']}/messages",
            json={"content": "sentinel"},
            headers=scene.master_auth,
        )
        await wait_for(
            ws.events, lambda e: e[0] == "message.created" and e[1]["content"] == "sentinel"
        )
        contents = [d["content"] for e, d in ws.events if e == "message.created"]
        assert contents == ["welcome", "sentinel"]
    finally:
        await ws.close()


async def test_master_connection_hears_only_rooms_it_subscribes(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    ws = await WsClient.open(scene.base, scene.master)
    try:
        await _post(http, scene, "unheard")
        frame = await ws.request("subscribe", {"room_id": scene.room["id"]})
        assert frame["event"] == "ack"
        await _post(http, scene, "heard")
        # "heard" is the sentinel: "unheard", published first, would have come before it.
        await wait_for(ws.events, lambda e: e[0] == "message.created")
        assert [d["content"] for e, d in ws.events if e == "message.created"] == ["heard"]
    finally:
        await ws.close()


async def test_oversize_frame_closes_the_connection(scene: Scene) -> None:
    ws = await WsClient.open(scene.base, scene.keys[0])
    await ws.conn.send('{"event": "ping", "data": {"pad": "' + "x" * 8000 + '"}}')
    await asyncio.wait_for(ws.conn.wait_closed(), 3)
    assert ws.conn.close_code == 1009


async def test_client_events_are_rate_limited_per_connection(scene: Scene) -> None:
    ws = await WsClient.open(scene.base, scene.keys[0])
    try:
        replies = [await ws.request("ping", {}) for _ in range(60)]
        refused = [r for r in replies if r["event"] == "error" and r["data"]["status"] == 429]
        assert refused
        assert "per second" in refused[0]["data"]["detail"], refused[0]  # the window named
        assert replies[0]["event"] == "pong"
    finally:
        await ws.close()


async def test_keys_in_websocket_urls_never_reach_the_log(
    scene: Scene, server_process: ChildProcess
) -> None:
    ws = await WsClient.open(scene.base, scene.keys[0])
    await ws.close()
    await until(lambda: "api_key=[redacted]" in server_process.output(), "the access log line")
    log = server_process.output()
    assert "api_key=[redacted]" in log
    assert scene.keys[0] not in log
    assert scene.keys[0].split("_", 2)[2] not in log


async def test_presence_is_not_broadcast_in_channels(scene: Scene, http: httpx.AsyncClient) -> None:
    channel = (
        await http.post(
            f"{scene.base}/api/v1/rooms",
            json={"type": "channel", "member_ids": [u["id"] for u in scene.users]},
            headers=scene.master_auth,
        )
    ).json()
    watcher = await WsClient.open(scene.base, scene.keys[0])
    try:
        other = await SioClient.open(scene.base, scene.keys[1])
        await wait_for(watcher.events, lambda e: e[0] == "presence")  # from the group room
        await other.close()
        await wait_for(watcher.events, lambda e: e[0] == "presence" and not e[1]["online"])
        rooms_told = {d["room_id"] for e, d in watcher.events if e == "presence"}
        assert rooms_told == {scene.room["id"]}, "channel members got presence"
        assert channel["id"] not in rooms_told
    finally:
        await watcher.close()
