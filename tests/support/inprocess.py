"""A real uvicorn server running the app on the test's own event loop: real WebSocket and
Socket.IO clients connect over TCP, while the test can still reach the app's state (the
hub, the database) and move the installed `clock`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.processes import free_port

# Longer than httpx keeps an idle connection for reuse (5 s): with both at uvicorn's default
# 5 s, a request sent after ~5 s idle could meet the server's keep-alive close and fail
# with httpx.ReadError (tests/core/test_inprocess_keep_alive.py).
IDLE_CONNECTION_SECONDS = 30


# A client's wait for an in-process server's answer: the server shares the test's event loop
# with the embedded worker and the fakes, and on a loaded CI box (2 cores, 2 pytest workers)
# an answer has taken over httpx's default 5 s; a wait is not what these tests measure.
RELAY_CLIENT_TIMEOUT = 30.0


@asynccontextmanager
async def serve_in_process(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) on a free port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=IDLE_CONNECTION_SECONDS,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="uvicorn-in-process")
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises the start-up error
        assert server.started, "uvicorn did not start within 5 s"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
