"""Plain WebSocket at /api/v1/websocket/open: JSON frames `{"event", "data", "id"?}`.

Replies to client events are `{"event": "ack", "id", "for", "data"}` or
`{"event": "error", "id", "for", "data": <problem>}`; `ping` is answered with `pong`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.core.errors import AppError, RateLimited
from app.realtime.client_events import ClientEvents, problem_of
from app.realtime.connection import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_RATE_LIMITED,
    CLOSE_UNAUTHORIZED,
    Frame,
    QueuedConnection,
)
from app.realtime.hub import Hub

log = logging.getLogger("chatapi.realtime")
router = APIRouter()
WEBSOCKET_PATH = "/websocket/open"  # under the API prefix
CLOSE_TOO_BIG = 1009
CLOSE_BAD_DATA = 1007


class WebSocketConnection(QueuedConnection):
    """A connection over Starlette's WebSocket."""

    transport = "websocket"

    def __init__(self, websocket: WebSocket, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websocket = websocket

    async def _write(self, frame: Frame) -> None:
        await self.websocket.send_text(frame.websocket_text())

    async def _close_transport(self, code: int, reason: str) -> None:
        await self.websocket.close(code=code, reason=reason)

    async def reply(self, frame: dict[str, Any]) -> None:
        """Answer a client event directly (acks bypass the event queue)."""
        await self.websocket.send_text(orjson.dumps(frame).decode())


def _presented_key(websocket: WebSocket) -> str | None:
    key = websocket.query_params.get("api_key") or websocket.headers.get("x-api-key")
    auth = websocket.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or None


@router.websocket(WEBSOCKET_PATH)
async def websocket_open(websocket: WebSocket) -> None:
    """Authenticate and subscribe, then answer the handshake and relay events both ways.

    Every subscription is live before `accept()`: once the client's connect returns, it
    misses nothing published. A refused key is accepted, then closed with 4401 (4429 when
    rate limited) and a reason, which a browser could not read from a refused handshake.
    """
    state = websocket.app.state
    hub: Hub = state.hub
    handler: ClientEvents = state.client_events
    max_frame = state.settings.MAX_WS_FRAME_BYTES
    key = _presented_key(websocket)
    token = websocket.query_params.get("token")
    try:
        if token:
            principal = await state.authenticator.redeem_connect_token(token)
        elif not key:
            raise AppError(
                "Send an API key (?api_key=, Authorization or X-API-Key) or a connect token "
                "(?token=)"
            )
        else:
            principal = await state.authenticator.authenticate(key)
        if principal.client_id == "":
            raise AppError("The admin key cannot open connections")
    except AppError as exc:
        code = CLOSE_RATE_LIMITED if isinstance(exc, RateLimited) else CLOSE_UNAUTHORIZED
        await websocket.accept()
        await websocket.close(code=code, reason=exc.detail[:120])
        return
    conn = WebSocketConnection(websocket, principal)
    try:
        await hub.register(conn)  # forgets the connection again if it fails
    except Exception:
        log.exception("websocket registration failed", extra={"connection": conn.id})
        await websocket.accept()
        await websocket.close(code=CLOSE_INTERNAL_ERROR, reason="server error, try again")
        return
    try:
        await websocket.accept()
        conn.start()
        while not conn.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                await _refuse(conn, "frames are JSON text, not binary")
                continue
            if len(text.encode()) > max_frame:
                await conn.close(CLOSE_TOO_BIG, f"frames are limited to {max_frame} bytes")
                break
            try:
                frame = orjson.loads(text)
                event = str(frame["event"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                await _refuse(conn, 'frames are JSON {"event", "data", "id"?}')
                continue
            await _answer(conn, handler, event, frame.get("data"), frame.get("id"))
    except (WebSocketDisconnect, RuntimeError):
        pass  # the peer went away mid-send or mid-accept
    finally:
        await hub.unregister(conn)
        with contextlib.suppress(Exception):
            await conn.close(1000, "bye")


async def _refuse(conn: WebSocketConnection, detail: str) -> None:
    await conn.reply(
        {"event": "error", "id": None, "for": None, "data": {"status": 400, "detail": detail}}
    )


async def _answer(
    conn: WebSocketConnection, handler: ClientEvents, event: str, data: Any, frame_id: Any
) -> None:
    try:
        result = await handler.handle(conn, event, data)
    except AppError as exc:
        await conn.reply({"event": "error", "id": frame_id, "for": event, "data": problem_of(exc)})
        return
    if event == "ping":
        await conn.reply({"event": "pong", "id": frame_id, "data": {}})
    else:
        await conn.reply({"event": "ack", "id": frame_id, "for": event, "data": result})
