"""One socket connection over either transport: events in a queue, requests with their acks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any, Protocol
from urllib.parse import urlencode

import socketio
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

Incoming = tuple[str, Any] | None  # None: the link closed
# WebSocket close codes of a refused or revoked key (4429, rate limited, is worth retrying).
REFUSED_CLOSE_CODES = frozenset({4401, 4403})
# Socket.IO refusals that are worth retrying (the server's own words).
TRANSIENT_REFUSALS = ("try again", "Too many")


class LinkRefused(Exception):
    """The server refused the credential (401/403, or a 44xx close): reconnecting won't help."""


class LinkRequestError(Exception):
    """A client event the server answered with a problem."""

    def __init__(self, problem: Any) -> None:
        self.problem = problem if isinstance(problem, dict) else {"detail": str(problem)}
        super().__init__(f"{self.problem.get('status', '')} {self.problem.get('detail', '')}")


class Link(Protocol):
    """What the connection needs of a transport."""

    incoming: asyncio.Queue[Incoming]

    async def open(self) -> None: ...
    async def request(self, event: str, data: dict[str, Any], timeout: float) -> Any: ...
    async def close(self) -> None: ...


class WebSocketLink:
    """Plain WebSocket at /api/v1/websocket/open: `{"event","data","id"}` frames, acks by id."""

    def __init__(self, base_url: str, auth: dict[str, str], open_timeout: float) -> None:
        origin = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self._url = f"{origin}/api/v1/websocket/open?{urlencode(auth)}"
        self._open_timeout = open_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ws: websockets.ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue()

    async def open(self) -> None:
        """Connect; raises LinkRefused for a refused credential."""
        try:
            self._ws = await websockets.connect(
                self._url, open_timeout=self._open_timeout, max_size=None
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise LinkRefused(f"HTTP {exc.response.status_code}") from exc
            raise
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                frame = json.loads(raw)
                waiter = self._pending.pop(frame.get("id"), None) if frame.get("id") else None
                if waiter is not None and frame.get("event") in ("ack", "error", "pong"):
                    if not waiter.done():
                        waiter.set_result(frame)
                    continue
                self.incoming.put_nowait((str(frame.get("event")), frame.get("data")))
        except ConnectionClosed:
            pass
        finally:
            code = self._ws.close_code
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("connection lost"))
            self._pending.clear()
            if code in REFUSED_CLOSE_CODES:
                self.incoming.put_nowait(
                    ("refused", {"code": code, "reason": self._ws.close_reason})
                )
            self.incoming.put_nowait(None)

    async def request(self, event: str, data: dict[str, Any], timeout: float) -> Any:
        """Send a client event; its ack's data, or LinkRequestError."""
        assert self._ws is not None
        frame_id = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = waiter
        await self._ws.send(json.dumps({"event": event, "data": data, "id": frame_id}))
        frame = await asyncio.wait_for(waiter, timeout)
        if frame.get("event") == "error":
            raise LinkRequestError(frame.get("data"))
        return frame.get("data")

    async def close(self) -> None:
        """Close the socket and wait for the reader."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class SocketIOLink:
    """Socket.IO at path /sockets with `auth`; acks through Socket.IO callbacks."""

    def __init__(self, base_url: str, auth: dict[str, str], open_timeout: float) -> None:
        self._base_url = base_url
        self._auth = auth
        self._open_timeout = open_timeout
        self._sio = socketio.AsyncClient(reconnection=False)
        self._sio.on("*", self._on_event)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("connect_error", self._on_refused)
        self.incoming: asyncio.Queue[Incoming] = asyncio.Queue()
        self._closed = False
        self._refusal: str | None = None

    async def _on_refused(self, data: Any = None) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        self._refusal = str(message)

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.incoming.put_nowait((event, data))

    async def _on_disconnect(self, *args: Any) -> None:
        if not self._closed:
            self._closed = True
            self.incoming.put_nowait(None)

    async def open(self) -> None:
        """Connect over the websocket transport; raises LinkRefused for a refused credential."""
        try:
            await self._sio.connect(
                self._base_url,
                socketio_path="/sockets",
                auth=self._auth,
                transports=["websocket"],
                wait_timeout=self._open_timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            # The server refused the namespace (its connect handler said why), as opposed to
            # a transport failure: a refused key stays refused.
            refusal = self._refusal
            refused = "namespaces failed to connect" in str(exc) and refusal is not None
            if refused and not any(mark in str(refusal) for mark in TRANSIENT_REFUSALS):
                raise LinkRefused(str(refusal)) from exc
            raise

    async def request(self, event: str, data: dict[str, Any], timeout: float) -> Any:
        """Send a client event; its ack, or LinkRequestError."""
        result = await self._sio.call(event, data, timeout=timeout)
        if isinstance(result, dict) and set(result) == {"error"}:
            raise LinkRequestError(result["error"])
        return result

    async def close(self) -> None:
        """Disconnect."""
        await self._sio.disconnect()
        await self._on_disconnect()


def make_link(transport: str, base_url: str, auth: dict[str, str], open_timeout: float) -> Link:
    """A link of the named transport (`websocket` or `socketio`)."""
    if transport == "websocket":
        return WebSocketLink(base_url, auth, open_timeout)
    if transport == "socketio":
        return SocketIOLink(base_url, auth, open_timeout)
    raise ValueError(f"unknown transport {transport!r}: use 'websocket' or 'socketio'")
