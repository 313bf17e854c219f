"""Scaled mode: two API processes and a Celery worker on one Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.broadcast import RedisBroadcast
from app.core.config import Settings
from app.core.redis import create_redis
from app.realtime.bus import EventBus
from app.realtime.events import room_target
from app.rooms.tasks import sweep_inactive
from app.worker.celery_app import configure_celery
from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.support.processes import chatapi_process, running_server, serve_process
from tests.support.realtime import (
    Scene,
    SioClient,
    WsClient,
    connect_then_publish_every_time,
    make_scene,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scaled_settings(pg_url: str, redis_server_url: str, redis_prefix: str) -> Settings:
    return make_settings(pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}rt:")


@pytest.fixture(scope="module")
def cluster(
    scaled_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """API processes A and B plus one Celery worker, sharing Redis and PostgreSQL."""
    workdir = tmp_path_factory.mktemp("cluster")
    env = child_env(scaled_settings)
    with (
        running_server(env, workdir, "api-a") as a,
        running_server(env, workdir, "api-b") as b,
        chatapi_process(["worker", "--concurrency", "2"], env, workdir, "worker"),
    ):
        yield a, b


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_events_cross_processes_both_ways(
    cluster: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = cluster
    scene = await make_scene(http, a, ADMIN_KEY)
    on_a = await SioClient.open(a, scene.keys[0])
    on_b = await WsClient.open(b, scene.keys[1])
    try:
        for base, content in ((a, "posted on A"), (b, "posted on B")):
            r = await http.post(
                f"{base}/api/v1/rooms/{scene.room['id']}/messages",
                json={"content": content},
                headers=scene.master_auth,
            )
            assert r.status_code == 201
            for client in (on_a, on_b):
                await wait_for(
                    client.events,
                    lambda e, c=content: e[0] == "message.created" and e[1]["content"] == c,
                )
        ack = await on_a.sio.call(
            "message.send", {"room_id": scene.room["id"], "content": "sio on A"}
        )
        assert ack["seq"] == 3
        await wait_for(on_b.events, lambda e: e[0] == "message.created" and e[1]["seq"] == 3)
    finally:
        await on_a.close()
        await on_b.close()


async def test_every_event_published_on_the_bus_right_after_a_connect_returns_arrives(
    cluster: tuple[str, str], http: httpx.AsyncClient, scaled_settings: Settings
) -> None:
    a, b = cluster
    scene = await make_scene(http, a, ADMIN_KEY)
    me = await http.get(f"{a}/api/v1/auth/me", headers=scene.master_auth)
    client_id = me.json()["client_id"]
    redis = create_redis(scaled_settings.REDIS_URL or "")
    bus = EventBus(RedisBroadcast(redis, scaled_settings.REDIS_KEY_PREFIX))

    async def publish(tag: str) -> None:
        # Straight onto Redis from outside both API processes, as a worker would.
        await bus.publish(
            client_id, room_target(scene.room["id"]), "message.created", {"content": tag}
        )

    try:
        await connect_then_publish_every_time([a, b], scene.keys[0], publish)
    finally:
        await redis.aclose()


async def test_an_event_published_by_a_celery_worker_reaches_clients_on_both_processes(
    cluster: tuple[str, str], http: httpx.AsyncClient, scaled_settings: Settings
) -> None:
    a, b = cluster
    scene = await make_scene(http, a, ADMIN_KEY)
    await http.patch(
        f"{a}/api/v1/clients/me",
        json={"room_inactivity_seconds": {"group": 1}},
        headers=scene.master_auth,
    )
    on_a = await WsClient.open(a, scene.keys[0])
    on_b = await SioClient.open(b, scene.keys[1])
    try:
        await asyncio.sleep(1.2)
        configure_celery(scaled_settings)
        await asyncio.to_thread(sweep_inactive.delay)
        for client in (on_a, on_b):
            _, data = await wait_for(
                client.events, lambda e: e[0] == "room.deactivated", timeout=10
            )
            assert data["room_id"] == scene.room["id"]
    finally:
        await on_a.close()
        await on_b.close()


async def test_presence_is_correct_across_processes(
    cluster: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = cluster
    scene = await make_scene(http, a, ADMIN_KEY)
    watcher = await WsClient.open(a, scene.keys[0])
    other = scene.users[1]["id"]

    def about_other(e: tuple[str, Any]) -> bool:
        return e[0] == "presence" and e[1]["user_id"] == other

    try:
        first = await WsClient.open(b, scene.keys[1])
        second = await SioClient.open(a, scene.keys[1])
        await wait_for(watcher.events, lambda e: about_other(e) and e[1]["online"])
        await first.close()
        await second.close()
        await wait_for(watcher.events, lambda e: about_other(e) and not e[1]["online"])
        # Both closes are counted by now (the offline needs both); a sentinel published
        # after them flushes anything else either process might have announced.
        r = await http.post(
            f"{a}/api/v1/rooms/{scene.room['id']}/messages",
            json={"content": "sentinel"},
            headers=scene.master_auth,
        )
        assert r.status_code == 201
        await wait_for(watcher.events, lambda e: e[0] == "message.created")
        told = [d["online"] for e, d in watcher.events if about_other((e, d))]
        assert told == [True, False], "one online across processes, one offline"
    finally:
        await watcher.close()


async def test_a_key_revoked_through_one_process_closes_its_socket_on_the_other_within_1s(
    cluster: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = cluster
    scene = await make_scene(http, a, ADMIN_KEY)
    on_b = await WsClient.open(b, scene.keys[0])
    started = asyncio.get_running_loop().time()
    r = await http.post(
        f"{a}/api/v1/auth/logout", headers={"Authorization": f"Bearer {scene.keys[0]}"}
    )
    assert r.status_code == 204
    await asyncio.wait_for(on_b.conn.wait_closed(), 1.0)
    assert on_b.conn.close_code == 4403
    assert asyncio.get_running_loop().time() - started < 1.0


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_slow_consumer_is_disconnected_and_memory_stays_bounded(
    scaled_settings: Settings, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    env = child_env(scaled_settings)
    with serve_process(env, tmp_path, "api-slow") as child:
        base, server = child.base, child.proc.pid
        scene: Scene = await make_scene(http, base, ADMIN_KEY)
        # A client that completes the upgrade and then never reads. A fixed small receive
        # buffer turns off Linux's autotuning (up to 32 MB on loopback).
        path = f"/api/v1/websocket/open?api_key={scene.keys[0]}"
        stalled = await asyncio.to_thread(_stalled_websocket, base, path)
        # The 101 answer came after the stalled connection's subscriptions were live.
        healthy = await WsClient.open(base, scene.keys[1])
        before = _rss_kb(server)
        await _flood_room(scaled_settings, http, base, scene)
        # Only now read what reached the stalled client: it must end in our close frame.
        stream = await asyncio.to_thread(_drain, stalled, 20.0)
        assert b"\x11\x38slow consumer" in stream, "no 4408 close frame after the backlog"
        grown_mb = (_rss_kb(server) - before) / 1024
        assert grown_mb < 64, f"server grew by {grown_mb:.0f} MB for one stalled client"
        assert healthy.conn.close_code is None, "the healthy client was not touched"
        assert len([e for e in healthy.events if e[0] == "message.created"]) == FLOOD_EVENTS
        await healthy.close()


FLOOD_EVENTS = 1200


async def _flood_room(settings: Settings, http: httpx.AsyncClient, base: str, scene: Scene) -> None:
    """Publish ~38 MB of events to the scene's room from another process's bus, paced so
    that Redis's own pub/sub output limit (32 MB) is not what gives way."""
    bus = EventBus(
        RedisBroadcast(create_redis(settings.REDIS_URL or ""), settings.REDIS_KEY_PREFIX)
    )
    me = await http.get(f"{base}/api/v1/auth/me", headers=scene.master_auth)
    client_id = me.json()["client_id"]
    payload = {"pad": "x" * 32_000}
    for i in range(FLOOD_EVENTS):
        await bus.publish(
            client_id, room_target(scene.room["id"]), "message.created", payload | {"seq": i}
        )
        if i % 50 == 49:
            await asyncio.sleep(0.02)


def _stalled_websocket(base: str, path: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 10.0) -> None:
    sock.settimeout(timeout)
    seen = b""
    while marker not in seen:
        chunk = sock.recv(1)
        assert chunk, f"closed before {marker!r}"
        seen += chunk
    sock.settimeout(None)


def _drain(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    header = bytes([0x81]) + (
        bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_slow_socketio_consumer_is_disconnected_and_memory_stays_bounded(
    scaled_settings: Settings, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    env = child_env(scaled_settings)
    with serve_process(env, tmp_path, "api-slow-sio") as child:
        base, server = child.base, child.proc.pid
        scene: Scene = await make_scene(http, base, ADMIN_KEY)
        # Engine.IO over a raw WebSocket: upgrade, send the Socket.IO CONNECT with our key,
        # then never read again.
        stalled = await asyncio.to_thread(
            _stalled_websocket, base, "/sockets/?EIO=4&transport=websocket"
        )
        stalled.sendall(_masked_text_frame('40{"api_key":"' + scene.keys[0] + '"}'))
        # Socket.IO's CONNECT answer follows the subscriptions; read up to it, no further.
        await asyncio.to_thread(_read_until, stalled, b"40{")
        healthy = await SioClient.open(base, scene.keys[1])
        before = _rss_kb(server)
        await _flood_room(scaled_settings, http, base, scene)
        deadline = asyncio.get_running_loop().time() + 20
        while "slow consumer disconnected" not in child.output():
            assert asyncio.get_running_loop().time() < deadline, "slow consumer never closed"
            await asyncio.sleep(0.1)
        grown_mb = (_rss_kb(server) - before) / 1024
        assert grown_mb < 64, f"server grew by {grown_mb:.0f} MB for one stalled client"
        await wait_for(
            healthy.events,
            lambda e: e[0] == "message.created" and e[1].get("seq") == FLOOD_EVENTS - 1,
            timeout=20,
        )
        assert healthy.sio.connected, "the healthy client was not touched"
        await healthy.close()
        stalled.close()


def _connected_rooms(client: SioClient) -> list[str]:
    [data] = [d for e, d in client.events if e == "connected"]
    return sorted(data["room_ids"])


async def test_a_membership_changed_through_one_process_is_followed_at_once_by_a_connect_on_the_other(
    cluster: tuple[str, str], http: httpx.AsyncClient
) -> None:
    # B caches a user's rooms on connect; joins, leaves and deletes made through A drop
    # that entry (the broadcast), so B's next connect reads them again.
    a, b = cluster
    scene = await make_scene(http, a, ADMIN_KEY)
    user, key, master = scene.users[0]["id"], scene.keys[0], scene.master_auth
    first = await SioClient.open(b, key)
    assert _connected_rooms(first) == [scene.room["id"]]
    await first.close()
    r = await http.post(
        f"{a}/api/v1/rooms", json={"member_ids": [scene.users[1]["id"]]}, headers=master
    )
    other_room = r.json()["id"]
    r = await http.post(
        f"{a}/api/v1/rooms/{other_room}/members", json={"user_ids": [user]}, headers=master
    )
    assert r.status_code == 200
    joined = await SioClient.open(b, key)
    try:
        assert _connected_rooms(joined) == sorted([scene.room["id"], other_room])
        r = await http.post(
            f"{a}/api/v1/rooms/{other_room}/messages", json={"content": "hi"}, headers=master
        )
        assert r.status_code == 201
        await wait_for(
            joined.events,
            lambda e: e[0] == "message.created" and e[1]["room_id"] == other_room,
        )
    finally:
        await joined.close()
    r = await http.delete(f"{a}/api/v1/rooms/{other_room}/members/{user}", headers=master)
    assert r.status_code == 204
    left = await SioClient.open(b, key)
    await left.close()
    assert _connected_rooms(left) == [scene.room["id"]]
    r = await http.delete(f"{a}/api/v1/rooms/{scene.room['id']}", headers=master)
    assert r.status_code == 204
    deleted = await SioClient.open(b, key)
    await deleted.close()
    assert _connected_rooms(deleted) == []
