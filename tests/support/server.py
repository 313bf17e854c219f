"""A real uvicorn server for an app inside the test's own event loop.

Unlike a `chatapi serve` child, the test process can then enqueue onto the app's embedded
(in-process) Celery broker, while real socket clients talk to the server over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.processes import free_port


@asynccontextmanager
async def serving(app: FastAPI, start_timeout: float = 30.0) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) on a free port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    # uvicorn would otherwise take over SIGINT/SIGTERM of the test process.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(), name="test-uvicorn")
    deadline = asyncio.get_running_loop().time() + start_timeout
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn stopped before it started")
        assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
