"""create_app(): the FastAPI application with its middleware, routers and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.router import API_PREFIX, api_router
from app.auth.authenticator import Authenticator
from app.core.broadcast import MemoryBroadcast, RedisBroadcast
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.middleware import (
    BodyLimitMiddleware,
    RequestLogMiddleware,
    RequireKeyMiddleware,
    SingleQueryValueMiddleware,
)
from app.core.openapi import install_openapi
from app.core.redis import create_redis
from app.observability import health
from app.observability.sentry import init_sentry
from app.ratelimit.storage import create_limiter
from app.realtime.bus import EventBus, set_process_broadcast
from app.realtime.client_events import ClientEvents
from app.realtime.gateway_socketio import asgi_app as socketio_asgi_app
from app.realtime.gateway_socketio import bind_handlers, create_socketio_server
from app.realtime.hub import Hub
from app.realtime.presence import MemoryPresence, RedisPresence
from app.worker.celery_app import configure_celery

log = logging.getLogger("chatapi")


def create_app(settings: Settings | None = None, *, run_embedded_worker: bool = True) -> FastAPI:
    """Build the app; with no REDIS_URL (and `run_embedded_worker`) it also runs Celery inside."""
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "api")
    configure_celery(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.DATABASE_URL)
        app.state.redis = create_redis(settings.REDIS_URL) if settings.REDIS_URL else None
        app.state.broadcast = (
            RedisBroadcast(app.state.redis, settings.REDIS_KEY_PREFIX)
            if app.state.redis is not None
            else MemoryBroadcast()
        )
        await app.state.broadcast.start()
        app.state.bus = EventBus(app.state.broadcast)
        if settings.embedded:
            set_process_broadcast(app.state.broadcast)
        app.state.authenticator = Authenticator(
            app.state.db, app.state.broadcast, create_limiter(settings), settings.ADMIN_API_KEY
        )
        await app.state.authenticator.start()
        app.state.presence = (
            RedisPresence(app.state.redis, settings.REDIS_KEY_PREFIX)
            if app.state.redis is not None
            else MemoryPresence()
        )
        app.state.hub = Hub(
            app.state.db,
            app.state.bus,
            app.state.presence,
            app.state.authenticator,
            presence_max_members=settings.PRESENCE_MAX_ROOM_MEMBERS,
            key_recheck_seconds=settings.KEY_RECHECK_INTERVAL_SECONDS,
        )
        app.state.client_events = ClientEvents(app.state.db, app.state.bus, settings, app.state.hub)
        await app.state.hub.start()
        embedded = None
        if settings.embedded and run_embedded_worker:
            from app.worker.embedded import EmbeddedWorker
            from app.worker.runtime import start_runtime, stop_runtime

            start_runtime(settings)
            embedded = EmbeddedWorker()
            embedded.start()
        log.info(
            "chatapi started",
            extra={"embedded": settings.embedded, "database": settings.DATABASE_URL.split(":")[0]},
        )
        try:
            yield
        finally:
            if embedded is not None:
                embedded.stop()
                stop_runtime()
            await app.state.hub.stop()
            await app.state.authenticator.stop()
            set_process_broadcast(None)
            await app.state.broadcast.stop()
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await app.state.db.dispose()

    app = FastAPI(
        title="ChatAPI",
        version="0.1.0",
        summary="Real-time messaging and notification relay",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        lifespan=lifespan,
        # Exact paths: `/rooms/` is a problem+json 404 naming `/rooms`, not a bodyless 307.
        redirect_slashes=False,
    )
    install_openapi(app)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(api_router)
    sio = create_socketio_server(settings.MAX_WS_FRAME_BYTES)
    bind_handlers(sio, app.state)
    app.state.sio = sio
    app.mount("/sockets", socketio_asgi_app(sio))
    # Innermost first: keyless calls are refused before their body is read; the request log
    # (outermost) sees the 401/408/413 the others answer.
    app.add_middleware(SingleQueryValueMiddleware)
    app.add_middleware(RequireKeyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(RequestLogMiddleware)
    return app
