"""Bounded thread pools for blocking work, one per kind, so no kind can starve another.

`asyncio.to_thread` runs everything in the event loop's default executor: min(32, cores + 4)
threads, six on two cores, shared by whatever calls it. Six slow jobs of one kind then held
every thread and the rest queued behind them: issue 20's template renders held all six, and
logins waited minutes for their bcrypt. Here each kind of blocking work has its own pool,
so it can only ever queue behind its own kind:

- `bcrypt`: hashing and verifying key secrets (CPU; bcrypt releases the GIL, so about one
  thread per core is all the throughput there is);
- `broker`: publishing Celery messages (doorbells; network I/O that may stall while the
  broker is unreachable).

Tenant templates do not run in threads at all (app/isolation/pool.py). The composition
root (app/compose.py) builds one set per process; the runtime binds it to its event loop
(for code without the runtime at hand: hashing key secrets in app/auth/service.py) and
shuts it down on stop. The doorbell is handed its broker pool when it is built.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

BCRYPT_THREADS = min(8, max(2, os.cpu_count() or 2))
BROKER_THREADS = 4


@dataclass(eq=False)
class Executors:
    """One process's (or runtime's) pools for blocking work."""

    bcrypt: ThreadPoolExecutor
    broker: ThreadPoolExecutor

    @classmethod
    def build(cls) -> Executors:
        """Fresh pools (their threads start on first use)."""
        return cls(
            bcrypt=ThreadPoolExecutor(BCRYPT_THREADS, thread_name_prefix="chatapi-bcrypt"),
            broker=ThreadPoolExecutor(BROKER_THREADS, thread_name_prefix="chatapi-broker"),
        )

    def shutdown(self) -> None:
        """Stop taking work; queued jobs are cancelled, running ones finish on their own."""
        for pool in (self.bcrypt, self.broker):
            pool.shutdown(wait=False, cancel_futures=True)


async def run_in(pool: Executor, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func(*args, **kwargs)` in `pool`, awaited (asyncio.to_thread with a chosen pool)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(pool, call)


_bound: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Executors]] = (
    weakref.WeakKeyDictionary()
)
_own: Executors | None = None


def bind(executors: Executors) -> None:
    """Make `executors` those of the running loop (a runtime's, from its start)."""
    _bound.setdefault(asyncio.get_running_loop(), []).append(executors)


def unbind(executors: Executors) -> None:
    """Undo `bind` (from the runtime's stop, on the same loop)."""
    bound = _bound.get(asyncio.get_running_loop(), [])
    if executors in bound:
        bound.remove(executors)


def current() -> Executors:
    """The executors of the runtime running on this loop (the latest started, while several
    share one loop, as in tests). Without one (the CLI, a service called directly) the
    process's own set, built on first use: still bounded and separate per kind."""
    global _own
    try:
        bound = _bound.get(asyncio.get_running_loop())
    except RuntimeError:
        bound = None
    if bound:
        return bound[-1]
    if _own is None:
        _own = Executors.build()
    return _own
