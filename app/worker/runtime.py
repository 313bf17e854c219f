"""The one long-lived event loop a worker process runs its async I/O on, with its own pools."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from app.core.broadcast import Broadcast, MemoryBroadcast, RedisBroadcast
from app.core.config import Settings
from app.core.db import Database
from app.core.redis import create_redis
from app.realtime.bus import EventBus, process_broadcast

T = TypeVar("T")


class WorkerRuntime:
    """An event loop in a daemon thread; sync Celery tasks hand it coroutines to run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="chatapi-worker-loop", daemon=True)
        self._thread.start()
        # The engine's connections are made lazily, on this loop, by the coroutines run here.
        self.db = Database(settings.DATABASE_URL)
        self.bus = EventBus(self._broadcast(settings))

    @staticmethod
    def _broadcast(settings: Settings) -> Broadcast:
        if settings.REDIS_URL:
            # Publish-only: a worker has no connections to deliver to.
            return RedisBroadcast(create_redis(settings.REDIS_URL), settings.REDIS_KEY_PREFIX)
        # Embedded: the API's own in-process broadcast (events with no API are dropped).
        return process_broadcast() or MemoryBroadcast()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the worker loop and wait for its result (called from task threads)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Dispose of the pools and stop the loop."""
        if self.loop.is_closed():
            return
        try:
            self.run(self.db.dispose(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def start_runtime(settings: Settings) -> WorkerRuntime:
    """Create the process's runtime for `settings` (replacing an older one)."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = WorkerRuntime(settings)
        return _runtime


def get_runtime() -> WorkerRuntime:
    """The process's runtime, created from the environment's settings if none was started."""
    global _runtime
    with _lock:
        if _runtime is None:
            from app.core.config import get_settings

            _runtime = WorkerRuntime(get_settings())
        return _runtime


def stop_runtime() -> None:
    """Close the process's runtime, if any."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
