"""A real HTTP webhook receiver (uvicorn + starlette on 127.0.0.1) for channel tests.

It records every request and answers as told per path; `hold(path)` makes requests to a path
wait until released, to test slow endpoints without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.processes import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    peer_port: int | None  # the client's source port: equal ports mean one reused connection


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Receiver:
    """Records requests; answers per path (default 204)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Received] = []
        self.answers: dict[str, Answer] = {}
        self.holds: dict[str, asyncio.Event] = {}
        self.arrived: dict[str, asyncio.Event] = {}
        self.scripts: dict[str, list[int]] = {}

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, path: str, status: int, body: bytes = b"", **headers: str) -> None:
        self.answers[path] = Answer(
            status, {k.replace("_", "-"): v for k, v in headers.items()}, body
        )

    def script(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` with `statuses` in turn, then as usual."""
        self.scripts[path] = list(statuses)

    def hold(self, path: str) -> asyncio.Event:
        """Requests to `path` wait until the returned event is set; `arrived[path]` fires."""
        self.arrived[path] = asyncio.Event()
        self.holds[path] = asyncio.Event()
        return self.holds[path]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        peer = request.client.port if request.client else None
        self.requests.append(Received(path, dict(request.headers), await request.body(), peer))
        if path in self.holds:
            self.arrived[path].set()
            await self.holds[path].wait()
        answer = self.answers.get(path, Answer())
        if self.scripts.get(path):
            answer = Answer(self.scripts[path].pop(0))
        return Response(answer.body, status_code=answer.status, headers=answer.headers)


@contextlib.asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    """Serve a Receiver on 127.0.0.1 in this event loop."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=receiver.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        for hold in receiver.holds.values():
            hold.set()
        server.should_exit = True
        await task
