"""The composition root: every process (API, `chatapi worker`) builds its parts here.

`build_runtime(settings, role)` chooses each part's implementation for one process —
Redis-backed when REDIS_URL is set, in-process otherwise; the doorbell publishing through
Celery — and returns the `Runtime` (app/runtime.py) that services, routes and tasks are
handed. Only the entry points import this module (app/main.py, app/cli.py, tests): it
sits above everything it assembles, the worker included, so no part imports it back.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from app.auth.authenticator import Authenticator
from app.channel_services import channel_services
from app.channels.base import ChannelFactoryContext, load_channels
from app.core.broadcast import Broadcast, MemoryBroadcast, RedisBroadcast
from app.core.clock import Clock, installed_clock
from app.core.config import Settings
from app.core.db import Database
from app.core.executors import Executors
from app.core.redis import create_redis
from app.core.secret_key import load_secret_box
from app.notifications.push import InAppPush
from app.observability.metrics import multiproc_registry
from app.providers.base import ProviderFactoryContext, load_provider_types
from app.ratelimit.fail_open import FailOpen
from app.ratelimit.policies import RateLimitPolicies
from app.ratelimit.storage import create_limiter, create_storage
from app.realtime.bus import EventBus
from app.realtime.presence import MemoryPresence, Presence, RedisPresence
from app.runtime import Role, Runtime
from app.templating.renderer import TemplateRenderer
from app.worker.doorbell import celery_doorbell


def build_runtime(settings: Settings, role: Role, *, clock: Clock | None = None) -> Runtime:
    """The parts of one `role` process for `settings`; `clock` (default: the process's
    installed one) is installed when the runtime starts."""
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
    secret_box = load_secret_box(settings)
    # Built once per process: each type pools its connections (SMTP sessions, HTTP clients).
    provider_types = load_provider_types(ProviderFactoryContext.from_settings(settings, clock))
    runtime = Runtime(
        settings=settings,
        role=role,
        db=db,
        redis=redis,
        broadcast=broadcast,
        bus=bus,
        presence=presence,
        authenticator=authenticator,
        secret_box=secret_box,
        limits=RateLimitPolicies(settings, storage, db, broadcast, fail_open),
        executors=pools,
        renderer=TemplateRenderer(settings),
        doorbell=celery_doorbell(pools.broker),
        clock=clock or installed_clock(),
        metrics=multiproc_registry() or REGISTRY,
        provider_types=provider_types,
        channels=load_channels(
            ChannelFactoryContext.from_settings(
                settings,
                bus,
                presence,
                services=channel_services(secret_box, db, provider_types),
                provider_types=provider_types,
            )
        ),
    )
    # In-app pushes to live connections: the send's fast path, connects and the sweep.
    runtime.parts[InAppPush] = InAppPush(db, bus, presence)
    return runtime
