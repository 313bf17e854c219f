"""Socket.IO at path /sockets (default namespace): the same events as the WebSocket.

Client events are acknowledged through Socket.IO's callback: the result on success, or
`{"error": <problem>}` on a refusal. Delivery across processes goes through the event bus
(Redis when configured), not python-socketio's own manager: one bus serves both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import socketio

from app.auth.principal import Principal
from app.core.errors import AppError
from app.realtime.client_events import ClientEvents, problem_of
from app.realtime.connection import Frame, QueuedConnection
from app.realtime.engineio_direct import direct_websocket, queued, record_websockets
from app.realtime.events import CLIENT_EVENTS
from app.realtime.hub import Hub

log = logging.getLogger("chatapi.realtime")
SOCKETIO_PATH = "sockets"
# Engine.IO buffers outgoing packets in an unbounded queue; past this many (while our
# events go through it) the client is not reading and is disconnected like a slow
# WebSocket consumer (SEND_QUEUE_SIZE).
ENGINEIO_QUEUE_LIMIT = 256


class SocketIOConnection(QueuedConnection):
    """A connection over one Socket.IO session.

    Events wait in our bounded queue and our writer writes each straight to the session's
    websocket (`engineio_direct`), as the plain WebSocket gateway does: Engine.IO's queue
    and writer only carry its own packets, and ours while the session is long-polling or
    Engine.IO still holds something of ours or its own unsent (so nothing overtakes the
    CONNECT).
    """

    transport = "socketio"

    def __init__(self, sio: socketio.AsyncServer, sid: str, principal: Principal) -> None:
        super().__init__(principal)
        self.sio = sio
        self.sid = sid
        self.eio_sid: str | None = sio.manager.eio_sid_from_sid(sid, "/")

    async def _write(self, frame: Frame) -> None:
        socket = self.sio.eio.sockets.get(self.eio_sid) if self.eio_sid else None
        if socket is None or socket.closing or socket.closed:
            return  # the session is ending; its disconnect handler unregisters us
        ws = direct_websocket(socket)
        if ws is not None:
            # A peer gone mid-write: Engine.IO's reader sees it and disconnects us.
            with contextlib.suppress(OSError):
                await ws.write(frame.engineio_text())
            return
        queue = socket.queue
        if queue.qsize() >= ENGINEIO_QUEUE_LIMIT:
            self._too_slow()
            return
        text = frame.engineio_text()
        queue.put_nowait(frame.engineio_message())
        queued(socket, text)

    async def _close_transport(self, code: int, reason: str) -> None:
        await self.sio.emit("disconnect_reason", {"code": code, "reason": reason}, to=self.sid)
        await self.sio.disconnect(self.sid)


class _HandshakeManager(socketio.AsyncManager):  # type: ignore[misc]
    """Runs a callback once a session's CONNECT packet has been sent.

    python-socketio (AsyncServer._handle_connect) awaits the connect handler, then sends
    the CONNECT packet, then calls `manager.connect(sid, namespace)`. A connection's writer
    started from here can therefore never put an event on the wire ahead of the CONNECT.
    """

    def __init__(self) -> None:
        super().__init__()
        self.on_handshake: dict[str, Callable[[], None]] = {}

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        callback = self.on_handshake.pop(sid, None)
        if callback is not None:
            callback()
        return result


def create_socketio_server(max_frame_bytes: int) -> socketio.AsyncServer:
    """The Socket.IO server; handlers are bound in `bind_handlers` once the app state exists."""
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=_HandshakeManager(),
        cors_allowed_origins="*",
        max_http_buffer_size=max_frame_bytes,
        transports=["websocket", "polling"],
    )
    record_websockets(sio)
    return sio


def bind_handlers(sio: socketio.AsyncServer, state: Any) -> None:
    """Connect, disconnect and client events, reading hub/authenticator from app state."""
    connections: dict[str, SocketIOConnection] = {}

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        key = auth.get("api_key") if isinstance(auth, dict) else None
        token = auth.get("token") if isinstance(auth, dict) else None
        if not key and not token:
            key = _from_environ(environ)
        if not key and not token:
            raise socketio.exceptions.ConnectionRefusedError(
                'Send an API key: auth={"api_key": ...} (or a connect token: auth={"token": ...})'
            )
        try:
            if token:
                principal = await state.authenticator.redeem_connect_token(str(token))
            else:
                principal = await state.authenticator.authenticate(key)
        except AppError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.detail) from None
        if principal.client_id == "":
            raise socketio.exceptions.ConnectionRefusedError("The admin key cannot connect")
        conn = SocketIOConnection(sio, sid, principal)
        hub: Hub = state.hub
        try:
            # Subscriptions are live before this handler returns, i.e. before the client
            # gets its CONNECT; the hub forgets the connection again if this fails.
            await hub.register(conn)
        except Exception:
            log.exception("socket.io registration failed", extra={"connection": conn.id})
            raise socketio.exceptions.ConnectionRefusedError("server error, try again") from None
        connections[sid] = conn
        manager = sio.manager
        if isinstance(manager, _HandshakeManager):
            manager.on_handshake[sid] = conn.start
        else:  # a server built elsewhere: python-socketio sends CONNECT right after we return
            asyncio.get_running_loop().call_soon(conn.start)

    @sio.event
    async def disconnect(sid: str, *args: Any) -> None:
        manager = sio.manager
        if isinstance(manager, _HandshakeManager):
            manager.on_handshake.pop(sid, None)
        conn = connections.pop(sid, None)
        if conn is not None:
            hub: Hub = state.hub
            await hub.unregister(conn)

    async def client_event(event: str, sid: str, data: Any = None) -> Any:
        conn = connections.get(sid)
        if conn is None:
            return {"error": {"status": 401, "detail": "not connected"}}
        handler: ClientEvents = state.client_events
        try:
            result = await handler.handle(conn, event, data)
        except AppError as exc:
            return {"error": problem_of(exc)}
        if event == "ping":
            await sio.emit("pong", {}, to=sid)
            return "pong"
        return result

    for name in CLIENT_EVENTS:
        sio.on(name, handler=_bind(client_event, name))


def _bind(fn: Any, name: str) -> Any:
    async def handler(sid: str, data: Any = None) -> Any:
        return await fn(name, sid, data)

    return handler


def _from_environ(environ: dict[str, Any]) -> str | None:
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    if query.get("api_key"):
        return str(query["api_key"][0])
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    header = environ.get("HTTP_X_API_KEY")
    return str(header) if header else None


def asgi_app(sio: socketio.AsyncServer) -> socketio.ASGIApp:
    """The Engine.IO ASGI app answering under /sockets."""
    return socketio.ASGIApp(sio, socketio_path=SOCKETIO_PATH)
