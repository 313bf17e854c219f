"""Writing Socket.IO events straight to a session's websocket, past Engine.IO's queue.

Engine.IO sends through one writer task per session that takes each packet from an
asyncio.Queue with a `wait_for`; at fan-out that per-packet machinery dominated our send
path. Our connections write the (once-encoded) text of an event to the websocket
themselves, as the plain WebSocket gateway does — but only once the last event they
handed to Engine.IO's queue is on the wire (an event queued behind the CONNECT, the
greeting first of all, is confirmed by our driver seeing Engine.IO's writer send it: under
Python 3.11 a packet can leave the queue a loop turn before it is written), so nothing
overtakes what Engine.IO already holds.

This relies on python-engineio internals, so its range is pinned in pyproject.toml and
tests/realtime/test_engineio_direct.py checks them on the installed version
(`scripts/check_engineio_bounds.sh` runs the realtime tests on both bounds):
`AsyncServer._async["websocket"]` (the ASGI websocket driver class, built with the
session's bound `_websocket_handler` and sent every packet through `send`) and the
socket's `upgraded`, `upgrading` and `queue`.
"""

from __future__ import annotations

from typing import Any

import socketio

# The attribute our driver sets on each Engine.IO socket it carries.
DRIVER_ATTR = "chatapi_websocket"
# Engine.IO socket attributes read here (checked against the installed version in tests).
SOCKET_ATTRIBUTES = ("upgraded", "upgrading", "closing", "closed", "queue")
# `awaited` before anything of ours went through Engine.IO on this websocket.
_NOT_YET = object()


def record_websockets(sio: socketio.AsyncServer) -> None:
    """Make each Engine.IO websocket of `sio` use our driver, found on its socket."""
    eio = sio.eio
    base = eio._async["websocket"]

    class Driver(base):  # type: ignore[misc,valid-type]
        """Engine.IO's ASGI websocket driver, remembering whether our last queued event
        has been written (`awaited` is None once it has)."""

        def __init__(self, handler: Any, server: Any) -> None:
            super().__init__(handler, server)
            self.awaited: object = _NOT_YET
            # The handler is the session's bound `_websocket_handler`.
            setattr(handler.__self__, DRIVER_ATTR, self)

        async def send(self, message: str | bytes) -> None:
            """Engine.IO's writer sending a packet (ours are written by `write`)."""
            await super().send(message)
            if message is self.awaited:
                self.awaited = None

        async def write(self, text: str) -> None:
            """Write one of our events."""
            await super().send(text)

    # A copy: the dict is the driver module's own, shared by every server of the process.
    eio._async = {**eio._async, "websocket": Driver}


def direct_websocket(socket: Any) -> Any | None:
    """Our driver of `socket` if an event may be written to it now; None when it must go
    through Engine.IO's queue: long-polling, upgrading, packets of Engine.IO's unsent, or
    one of ours queued earlier and not yet written."""
    if not socket.upgraded or socket.upgrading or not socket.queue.empty():
        return None
    ws = getattr(socket, DRIVER_ATTR, None)
    if ws is None or ws.awaited is not None:
        return None
    return ws


def queued(socket: Any, text: str) -> None:
    """Note that `text` (an event's string, the very object Engine.IO will send) was put on
    `socket`'s queue: direct writes wait until it is on the wire."""
    ws = getattr(socket, DRIVER_ATTR, None)
    if ws is not None:
        ws.awaited = text
