"""How Celery tasks reach their process's runtime, and the loop a worker process runs it on.

A process binds the runtime it built (app/runtime.py) to its Celery app; tasks read it
through `RuntimeTask.runtime`. Nothing is built on demand: a task in a process that bound
no runtime fails with RuntimeNotBuilt instead of quietly making a second one from the
environment.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Celery, Task

from app.runtime import Runtime

T = TypeVar("T")
_ATTRIBUTE = "chatapi_runtime"


class RuntimeNotBuilt(RuntimeError):
    """A task ran in a process that has not built and bound a runtime."""


def bind_runtime(app: Celery, runtime: Runtime | None) -> None:
    """Make `runtime` the one `app`'s tasks use in this process (None: unbind)."""
    setattr(app, _ATTRIBUTE, runtime)


def runtime_of(app: Celery) -> Runtime:
    """The runtime bound to `app`; raises RuntimeNotBuilt when there is none."""
    runtime = getattr(app, _ATTRIBUTE, None)
    if not isinstance(runtime, Runtime):
        raise RuntimeNotBuilt(
            "no runtime in this process: `chatapi serve` (embedded) or `chatapi worker` "
            "must build_runtime(...) and bind_runtime(celery_app, runtime) before tasks run"
        )
    return runtime


class RuntimeTask(Task):  # type: ignore[misc]
    """The base of every task: `self.runtime` is the process's runtime."""

    @property
    def runtime(self) -> Runtime:
        """The runtime bound to this task's Celery app."""
        return runtime_of(self.app)


class BackgroundLoop:
    """An event loop in a daemon thread: the worker process's async side."""

    def __init__(self, name: str = "chatapi-worker-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop and wait up to `timeout` seconds for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
