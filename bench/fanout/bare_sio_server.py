"""Baseline for bench/fanout: a bare python-socketio broadcast server on uvicorn.

Every client that connects (Socket.IO path `/sockets`) joins room "bench".
`POST /trigger {"count": N, "payload_bytes": B}` emits N `message.created` events
`{"seq": i, "sent_at": time.time(), "pad": "x" * B}` to the room (all at once, or one every
`interval_ms` when that is given), answering once all are emitted; `GET /rss` answers the
process RSS in bytes. Nothing else: no auth, no database, default JSON, uvicorn defaults
(the same as `chatapi serve`).

Usage: python bench/fanout/bare_sio_server.py --port P [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import socketio
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ROOM = "bench"
EVENT = "message.created"

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])


async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    await sio.enter_room(sid, ROOM)


sio.on("connect", handler=connect)


def rss_bytes() -> int:
    """VmRSS of this process from /proc/self/status, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def http_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The two HTTP endpoints; everything else is 404."""
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/rss":
        await _respond(send, 200, {"rss": rss_bytes()})
        return
    if method == "POST" and path == "/trigger":
        try:
            body = json.loads(await _read_body(receive) or b"{}")
            count = int(body.get("count", 1))
            pad = "x" * int(body.get("payload_bytes", 0))
            interval = float(body.get("interval_ms", 0)) / 1000
        except (ValueError, TypeError, AttributeError) as exc:
            await _respond(send, 400, {"error": str(exc)})
            return
        start = time.monotonic()
        for seq in range(count):
            if interval and seq:  # paced: emit number `seq` at start + seq x interval
                await asyncio.sleep(max(0.0, start + seq * interval - time.monotonic()))
            await sio.emit(EVENT, {"seq": seq, "sent_at": time.time(), "pad": pad}, room=ROOM)
        await _respond(send, 200, {"emitted": count})
        return
    await _respond(send, 404, {"error": "not found"})


app = socketio.ASGIApp(sio, other_asgi_app=http_app, socketio_path="sockets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    version = importlib.metadata.version("python-socketio")
    print(f"bare python-socketio {version} listening on {args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
