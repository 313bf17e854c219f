"""One process's parts: what services, routes and tasks are handed (`Runtime`).

`build_runtime` (app/compose.py, the composition root) picks and builds the parts for one
process — database, Redis client, broadcast + event bus, presence, authenticator, doorbell,
clock, metrics registry — from the settings it is handed, never from the environment;
`Runtime.start()` / `stop()` bring them up and down on the event loop that will own them.
This module names only the parts' types, so every layer above it may take a `Runtime`
while it imports none of them (no domain package, not the worker). The embedded Celery
worker threads use the API's own runtime, so tasks publish on the same bus and read the
same presence as the sockets (DESIGN.md §1.3).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from app.auth.authenticator import Authenticator
from app.channels.base import Channel
from app.channels.waiting import CapacityWaiters
from app.core import executors
from app.core.broadcast import Broadcast
from app.core.clock import Clock, install_clock, installed_clock
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.db import Database
from app.core.doorbell import Doorbell
from app.core.executors import Executors
from app.providers.base import ProviderType
from app.ratelimit.policies import RateLimitPolicies
from app.realtime.bus import EventBus
from app.realtime.presence import Presence
from app.templating.renderer import TemplateRenderer

log = logging.getLogger("chatapi.runtime")
T = TypeVar("T")
Role = Literal["api", "worker"]


@runtime_checkable
class Drains(Protocol):
    """A part with background work to finish before the process's pools close."""

    async def drain(self) -> None:
        """Wait for the background work started so far."""
        ...


class RuntimeNotStarted(RuntimeError):
    """`Runtime.run` was called before `start()` (or after `stop()`)."""


class RuntimeCallTimeout(TimeoutError):
    """A call into the runtime did not finish in time; its coroutine was cancelled."""


@dataclass(eq=False)
class Runtime:
    """One process's parts, built by `build_runtime` and handed to whoever needs them."""

    settings: Settings
    role: Role
    db: Database
    redis: Redis | None
    broadcast: Broadcast
    bus: EventBus
    presence: Presence
    authenticator: Authenticator
    # Seals/opens stored webhook secrets and SMTP passwords (app/core/secret_key.py).
    secret_box: SecretBox
    # Rate limits and quotas (app/ratelimit/policies.py), counted in the shared storage.
    limits: RateLimitPolicies
    # Bounded thread pools per kind of blocking work (bcrypt, broker publishes).
    executors: Executors
    # Tenant templates render in limited child processes (started on first use).
    renderer: TemplateRenderer
    # Rings for committed rows ("look at these now"); publishes through Celery
    # (app/worker/doorbell.py). Drained at stop, after the stop hooks.
    doorbell: Doorbell
    # The process's time: `app.core.clock.utcnow()`/`monotonic()` read the clock installed
    # at start, so a test hands build_runtime a ManualClock instead of patching call sites.
    clock: Clock
    # The Prometheus registry this process exposes (/metrics, the worker's metrics port):
    # every process's series in multiprocess mode, else the process's default registry.
    metrics: CollectorRegistry
    # The delivery channels by name, loaded once per process from the entry points.
    channels: dict[str, Channel] = field(default_factory=dict)
    # The provider types by name (app/providers), loaded once per process from the entry
    # points; the channels that deliver through providers share them (closed at stop).
    provider_types: dict[str, ProviderType] = field(default_factory=dict)
    # Set when the process is asked to stop (SIGTERM, the API's shutdown): work claimed from
    # then on is given back unspent instead of started (DESIGN.md §4).
    shutting_down: threading.Event = field(default_factory=threading.Event)
    # Deliveries waiting for a channel's in-flight cap; made by the delivery engine on first
    # use (app/channels/waiting.py); handed over by its stop hook.
    waiting: CapacityWaiters | None = None
    # When this process's delivery sweep last looked (app/notifications/sweep.py).
    swept_at: datetime | None = None
    # Parts of the layers above, registered by the composition root (app/compose.py) and
    # found by their type (`part`): e.g. the in-app pushes (app/notifications/push.py).
    parts: dict[type[Any], Any] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _stop_hooks: list[Callable[[], Awaitable[None]]] = field(
        default_factory=list, init=False, repr=False
    )
    _replaced_clock: Clock | None = field(default=None, init=False, repr=False)

    def part(self, kind: type[T]) -> T:
        """The registered part of type `kind` (KeyError: none was registered)."""
        found = self.parts[kind]
        if not isinstance(found, kind):
            raise TypeError(f"the part registered for {kind.__name__} is a {type(found)!r}")
        return found

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop that owns the engine and connections, once started."""
        return self._loop

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` first thing at `stop()` (latest first), before the doorbell drains:
        a part made on first use (the delivery engine's waiters) hands over its work."""
        self._stop_hooks.append(hook)

    async def start(self) -> None:
        """Start the parts that run in the background, on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._replaced_clock = install_clock(self.clock)
        # Code without the runtime at hand finds the pools through the loop.
        executors.bind(self.executors)
        self.shutting_down.clear()
        await self.broadcast.start()
        await self.authenticator.start()
        await self.limits.start()

    async def stop(self) -> None:
        """Stop the background parts and close every connection pool."""
        try:
            # Deliveries woken for a freed slot finish and the rest waiting for one are handed
            # over (stop hooks), then rings of requests that already answered go out, before
            # the pools close.
            self.shutting_down.set()
            while self._stop_hooks:
                hook = self._stop_hooks.pop()
                try:
                    await hook()
                except Exception:
                    log.exception("a stop hook failed")
            await self.doorbell.drain()
            for part in self.parts.values():
                # Work a part started in the background (pushes after a send) finishes
                # before the pools it uses close.
                if isinstance(part, Drains):
                    try:
                        await part.drain()
                    except Exception:
                        log.exception("draining %r failed", type(part).__name__)
            for channel in self.channels.values():
                try:
                    await channel.aclose()
                except Exception:
                    log.exception("closing channel %r failed", channel.name)
            for provider_type in self.provider_types.values():
                try:
                    await provider_type.aclose()
                except Exception:
                    log.exception("closing provider type %r failed", provider_type.type)
            await self.limits.stop()
            await self.authenticator.stop()
            await self.broadcast.stop()
            if self.redis is not None:
                await self.redis.aclose()
            await self.db.dispose()
            await self.renderer.aclose()
        finally:
            executors.unbind(self.executors)
            self.executors.shutdown()
            self._loop = None
            # Give the process back its clock, unless someone installed another since.
            if self._replaced_clock is not None and installed_clock() is self.clock:
                install_clock(self._replaced_clock)
            self._replaced_clock = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the runtime's loop and wait for its result, from another thread.

        Always bounded: `timeout` defaults to TASK_TIMEOUT_SECONDS; on expiry the coroutine
        is cancelled and RuntimeCallTimeout raised, so a hung call frees its task thread.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeNotStarted(f"the {self.role} runtime is not started")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            # Blocking the loop on a coroutine it must itself run would never finish.
            raise RuntimeError("Runtime.run blocks: call it from a task thread, or await")
        limit = self.settings.TASK_TIMEOUT_SECONDS if timeout is None else timeout
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError:
            if future.done() and not future.cancelled():
                raise  # the coroutine itself raised a TimeoutError
            future.cancel()
            raise RuntimeCallTimeout(
                f"runtime call did not finish within {limit} s and was cancelled"
            ) from None
