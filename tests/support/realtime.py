"""Real-time test clients: a `websockets` client and a python-socketio client that record
every event, plus REST helpers against a running server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import socketio
import uvicorn
import websockets
from fastapi import FastAPI

from app.auth.principal import Principal
from app.realtime.connection import Frame, QueuedConnection
from tests.support.api import bearer
from tests.support.processes import free_port

Received = tuple[str, Any]
# python-socketio waits 1 s for the server's CONNECT by default, then gives up with a bare
# ConnectionError: a busy 2-core machine can take longer to authenticate and register a
# connection. A refusal still comes at once (connect_error).
CONNECT_WITHIN_SECONDS = 10.0


async def wait_for(
    seen: list[Received], match: Callable[[Received], bool], timeout: float = 5.0
) -> Received:
    """The first recorded event matching `match`, waiting up to `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for item in seen:
            if match(item):
                return item
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no matching event within {timeout}s; got {[e for e, _ in seen]}")
        await asyncio.sleep(0.02)


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait until `check()` holds (state the server reaches on its own, e.g. cleanup)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class WsClient:
    """A plain WebSocket client recording `{"event","data"}` frames."""

    def __init__(self, conn: websockets.ClientConnection) -> None:
        self.conn = conn
        self.events: list[Received] = []
        self.frames: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base: str, key: str, *, ready: bool = True, **kwargs: Any) -> WsClient:
        """Connect with `?api_key=`; by default wait for the `connected` event (information
        only: subscriptions are live once the handshake completed)."""
        url = base.replace("http://", "ws://") + f"/api/v1/websocket/open?api_key={key}"
        client = cls(await websockets.connect(url, **kwargs))
        if ready:
            await wait_for(client.events, lambda e: e[0] == "connected")
        return client

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.conn:
                frame = orjson.loads(raw)
                self.frames.append(frame)
                self.events.append((frame["event"], frame.get("data")))

    async def request(
        self, event: str, data: dict[str, Any], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Send a client event and wait for its ack/error frame."""
        frame_id = next(self._ids)
        await self.conn.send(orjson.dumps({"event": event, "data": data, "id": frame_id}).decode())
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for frame in self.frames:
                if frame.get("id") == frame_id:
                    return frame
            assert asyncio.get_running_loop().time() < deadline, f"no reply to {event}"
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close and stop reading."""
        await self.conn.close()
        self._reader.cancel()


class SioClient:
    """A python-socketio client recording every event."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[Received] = []
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self._refused)

    async def _refused(self, data: Any = None) -> None:
        self.events.append(("connect_error", data))

    async def _record(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))

    @classmethod
    async def open(cls, base: str, key: str, *, ready: bool = True) -> SioClient:
        """Connect at path /sockets with auth={"api_key": key}; by default wait for the
        `connected` event (information only: subscriptions are live once connect returns)."""
        client = cls()
        await client.sio.connect(
            base,
            socketio_path="sockets",
            auth={"api_key": key},
            transports=["websocket"],
            wait_timeout=CONNECT_WITHIN_SECONDS,
        )
        if ready:
            await wait_for(client.events, lambda e: e[0] == "connected")
        return client

    async def close(self) -> None:
        """Disconnect."""
        await self.sio.disconnect()


@dataclass
class Scene:
    """A tenant on a running server with users, their keys and one room."""

    base: str
    master: str
    users: list[dict[str, Any]]
    keys: list[str]
    room: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def master_auth(self) -> dict[str, str]:
        """Headers for the master key."""
        return bearer(self.master)


async def make_scene(http: httpx.AsyncClient, base: str, admin_key: str, users: int = 2) -> Scene:
    """Create a tenant, `users` users with keys, and a group room of all of them."""
    r = await http.post(f"{base}/api/v1/clients", json={"name": "rt"}, headers=bearer(admin_key))
    master = r.json()["master_key"]
    made, keys = [], []
    for i in range(users):
        u = (
            await http.post(
                f"{base}/api/v1/users", json={"external_id": f"u{i}"}, headers=bearer(master)
            )
        ).json()
        made.append(u)
        keys.append(
            (
                await http.post(
                    f"{base}/api/v1/auth/login", json={"user_id": u["id"]}, headers=bearer(master)
                )
            ).json()["api_key"]
        )
    room = (
        await http.post(
            f"{base}/api/v1/rooms",
            json={"member_ids": [u["id"] for u in made]},
            headers=bearer(master),
        )
    ).json()
    return Scene(base, master, made, keys, room)


class RecordingConnection(QueuedConnection):
    """A connection whose transport is a list: what a client would have received."""

    transport = "memory"

    def __init__(self, principal: Principal) -> None:
        super().__init__(principal)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.closed_with: list[tuple[int, str]] = []

    async def _write(self, frame: Frame) -> None:
        self.received.append((frame.event, frame.data))

    async def _close_transport(self, code: int, reason: str) -> None:
        self.closed_with.append((code, reason))


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` under a real uvicorn server inside this event loop; yield its base URL.

    In-process so a test can reach the app's hub (hooks, fault injection) while clients
    talk to it over real sockets."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    # The test runner owns the process's signals, not this server.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


RealtimeClient = WsClient | SioClient
CONNECT_RACE_ROUNDS = 50


async def connect_then_publish_every_time(
    bases: list[str], key: str, publish: Callable[[str], Awaitable[None]]
) -> None:
    """CONNECT_RACE_ROUNDS times per transport (spread over `bases`, 10 at a time): open a
    connection and, the moment its connect call returns (not waiting for `connected`),
    `publish(tag)` an event its room hears; every connection must receive its own tag."""
    gate = asyncio.Semaphore(10)

    async def one(i: int, transport: str) -> None:
        base = bases[i % len(bases)]
        tag = f"{transport}-{i}"
        async with gate:
            client: RealtimeClient = (
                await WsClient.open(base, key, ready=False)
                if transport == "websocket"
                else await SioClient.open(base, key, ready=False)
            )
            try:
                await publish(tag)
                await wait_for(
                    client.events,
                    lambda e: e[0] == "message.created" and e[1].get("content") == tag,
                )
                assert client.events[0][0] == "connected", "connected is the first frame"
            finally:
                await client.close()

    await asyncio.gather(
        *(one(i, t) for i in range(CONNECT_RACE_ROUNDS) for t in ("websocket", "socketio"))
    )
