"""The composition root: every process (API, `chatapi worker`) builds its parts here.

`build_runtime(settings, role)` makes the database, Redis client, broadcast + event bus,
presence and authenticator for one process from the settings it is handed — never from
the environment — and `Runtime.start()` / `stop()` bring them up and down on the event
loop that will own them. The API's lifespan and the worker process both call it; the
embedded Celery worker threads use the API's own runtime, so tasks publish on the same bus
and read the same presence as the sockets (DESIGN.md §1.3).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from redis.asyncio import Redis

from app.auth.authenticator import Authenticator
from app.channels.base import Channel, ChannelFactoryContext, load_channels
from app.core import executors
from app.core.broadcast import Broadcast, MemoryBroadcast, RedisBroadcast
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.db import Database
from app.core.executors import Executors
from app.core.redis import create_redis
from app.core.secret_key import load_secret_box
from app.inbound.renderer import TemplateRenderer
from app.notifications.push import InAppPush
from app.ratelimit.fail_open import FailOpen
from app.ratelimit.policies import RateLimitPolicies
from app.ratelimit.storage import create_limiter, create_storage
from app.realtime.bus import EventBus
from app.realtime.presence import MemoryPresence, Presence, RedisPresence

if TYPE_CHECKING:
    from app.notifications.waiting import CapacityWaiters

log = logging.getLogger("chatapi.runtime")
T = TypeVar("T")
# Seals secrets where no SECRET_KEY is configured outside production (config refuses that
# in production); anything sealed with it is readable by anyone with this source.
Role = Literal["api", "worker"]


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
    # The delivery channels by name, loaded once per process from the entry points.
    channels: dict[str, Channel] = field(default_factory=dict)
    # Set when the process is asked to stop (SIGTERM, the API's shutdown): work claimed from
    # then on is given back unspent instead of started (DESIGN.md §4).
    shutting_down: threading.Event = field(default_factory=threading.Event)
    # Deliveries waiting for a channel's in-flight cap; made by the delivery engine on first
    # use (app/notifications/waiting.py).
    waiting: CapacityWaiters | None = None
    # In-app pushes to live connections (the send's fast path, connects, the sweep).
    in_app: InAppPush = field(init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.in_app = InAppPush(self.db, self.bus, self.presence)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop that owns the engine and connections, once started."""
        return self._loop

    async def start(self) -> None:
        """Start the parts that run in the background, on the running loop."""
        self._loop = asyncio.get_running_loop()
        # Code without the runtime at hand (the doorbells) finds the pools through the loop.
        executors.bind(self.executors)
        self.shutting_down.clear()
        await self.broadcast.start()
        await self.authenticator.start()
        await self.limits.start()

    async def stop(self) -> None:
        """Stop the background parts and close every connection pool."""
        try:
            # Deliveries woken for a freed slot finish and the rest waiting for one are handed
            # over, then doorbells rung by requests that already answered go out, before the
            # pools close. (Imported here: both import modules that import this one.)
            from app.notifications import delivery, doorbell

            self.shutting_down.set()
            await delivery.stop_waiting(self)
            await doorbell.drain()
            await self.in_app.drain()
            for channel in self.channels.values():
                try:
                    await channel.aclose()
                except Exception:
                    log.exception("closing channel %r failed", channel.name)
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


def build_runtime(settings: Settings, role: Role) -> Runtime:
    """The parts of one `role` process for `settings`: Redis-backed when REDIS_URL is set,
    in-process otherwise. (Time comes from app.core.clock, which tests replace.)"""
    if role == "worker" and not settings.REDIS_URL:
        # A separate worker with an in-memory bus would drop every event it publishes.
        raise ValueError("a worker process needs REDIS_URL; embedded tasks use the API's runtime")
    db = Database(settings.DATABASE_URL)
    redis = create_redis(settings.REDIS_URL) if settings.REDIS_URL else None
    broadcast: Broadcast
    presence: Presence
    if redis is not None:
        broadcast = RedisBroadcast(redis, settings.REDIS_KEY_PREFIX)
        presence = RedisPresence(redis, settings.REDIS_KEY_PREFIX)
    else:
        broadcast = MemoryBroadcast()
        presence = MemoryPresence()
    storage = create_storage(settings)
    # One view per process of whether that storage answers (health reads it).
    fail_open = FailOpen()
    pools = Executors.build()
    authenticator = Authenticator(
        db,
        broadcast,
        create_limiter(settings, storage),
        settings.ADMIN_API_KEY,
        pools.bcrypt,
        fail_open,
    )
    bus = EventBus(broadcast)
    return Runtime(
        settings=settings,
        role=role,
        db=db,
        redis=redis,
        broadcast=broadcast,
        bus=bus,
        presence=presence,
        authenticator=authenticator,
        secret_box=load_secret_box(settings),
        limits=RateLimitPolicies(settings, storage, db, broadcast, fail_open),
        executors=pools,
        renderer=TemplateRenderer(settings),
        channels=load_channels(ChannelFactoryContext.from_settings(settings, bus, presence)),
    )
