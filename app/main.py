"""create_app(): the FastAPI application with its middleware, routers and lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.fast_lane import FastLane
from app.api.router import API_PREFIX, MATCH_ORDER, documented_paths
from app.channels.webhook_docs import install_webhook_docs
from app.compose import build_runtime
from app.core.config import Settings, get_settings
from app.core.docs import install_docs
from app.core.errors import install_error_handlers
from app.core.heap import freeze_startup_heap
from app.core.logging import configure_logging
from app.core.middleware import (
    BodyLimitMiddleware,
    RequestLogMiddleware,
    RequireKeyMiddleware,
    SingleQueryValueMiddleware,
)
from app.core.openapi import install_openapi
from app.core.operation_ids import OPENAPI_TAGS, operation_id
from app.notifications.inbox import owed_push_hook
from app.notifications.push import InAppPush
from app.observability import exposition, health, metrics
from app.observability.multiproc import mark_process_dead
from app.observability.sentry import init_sentry
from app.ratelimit.middleware import RateLimitHeadersMiddleware
from app.realtime.asyncapi import install_asyncapi
from app.realtime.client_events import ClientEvents
from app.realtime.gateway_socketio import SOCKETIO_PATH, bind_handlers, create_socketio_server
from app.realtime.gateway_socketio import asgi_app as socketio_asgi_app
from app.realtime.gateway_websocket import WEBSOCKET_PATH, websocket_open
from app.realtime.hub import Hub
from app.worker.celery_app import configure_celery

log = logging.getLogger("chatapi")
SOCKETIO_PREFIX = f"/{SOCKETIO_PATH}/"
PLAIN_WEBSOCKET_PATH = API_PREFIX + WEBSOCKET_PATH


class ChatAPI(FastAPI):
    """The FastAPI app, except that long-lived websockets skip the HTTP middleware stack.

    A Socket.IO websocket goes straight to Engine.IO, and the plain WebSocket endpoint is
    called directly (the same function its route runs). None of the HTTP middleware acts
    on websockets, but each layer of the stack (ours, Starlette's, the router's) would hold
    a coroutine for the connection's whole life and wrap every frame it sends. Socket.IO's
    long-polling requests (HTTP) still go through the stack and its mount at /sockets.
    """

    socketio_websockets: ASGIApp | None = None
    # The direct routes' well-formed requests skip the HTTP stack (app/api/fast_lane.py).
    fast_lane: FastLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI connection."""
        if scope["type"] == "websocket":
            path = scope["path"]
            sockets = self.socketio_websockets
            if sockets is not None and path.startswith(SOCKETIO_PREFIX):
                await sockets(scope, receive, send)
                return
            if path == PLAIN_WEBSOCKET_PATH:
                scope["app"] = self  # what the route would see (websocket.app.state)
                await websocket_open(WebSocket(scope, receive, send))
                return
        elif self.fast_lane is not None:
            found = self.fast_lane.match(scope)
            if found is not None:
                await self.fast_lane(scope, receive, send, *found)
                return
        await super().__call__(scope, receive, send)

    async def full_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app with its whole HTTP middleware stack (what the fast lane falls back to)."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, run_embedded_worker: bool = True) -> FastAPI:
    """Build the app; with no REDIS_URL (and `run_embedded_worker`) it also runs Celery inside."""
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "api")
    configure_celery(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The composition root builds every part; the API adds its hub and gateways.
        runtime = build_runtime(settings, role="api")
        await runtime.start()
        app.state.runtime = runtime
        app.state.db = runtime.db
        app.state.redis = runtime.redis
        app.state.broadcast = runtime.broadcast
        app.state.bus = runtime.bus
        app.state.presence = runtime.presence
        app.state.authenticator = runtime.authenticator
        app.state.limits = runtime.limits
        app.state.hub = Hub(
            runtime.db,
            runtime.bus,
            runtime.presence,
            runtime.authenticator,
            presence_max_members=settings.PRESENCE_MAX_ROOM_MEMBERS,
            key_recheck_seconds=settings.KEY_RECHECK_INTERVAL_SECONDS,
        )
        # The in-app inbox: notifications stored while a user was offline go out on connect.
        app.state.hub.on_connect(owed_push_hook(runtime.part(InAppPush)))
        app.state.client_events = ClientEvents(runtime.db, runtime.bus, settings, app.state.hub)
        await app.state.hub.start()
        embedded = None
        if settings.embedded and run_embedded_worker:
            from app.worker.embedded import EmbeddedWorker

            # The in-process worker's tasks run on this loop with these very parts.
            embedded = EmbeddedWorker(runtime)
            embedded.start()
        # Startup's long-lived objects out of every later full collection (app/core/heap.py).
        freeze_startup_heap()
        log.info(
            "chatapi started",
            extra={"embedded": settings.embedded, "database": settings.DATABASE_URL.split(":")[0]},
        )
        try:
            yield
        finally:
            if embedded is not None:
                # Off the loop: running tasks need it to finish.
                await asyncio.to_thread(embedded.stop)
            await app.state.hub.stop()
            await runtime.stop()
            mark_process_dead()

    app = ChatAPI(
        title="ChatAPI",
        version="0.1.0",
        summary="Real-time messaging and notification relay",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # Ours instead (install_docs): FastAPI's load their files from CDNs.
        docs_url=None,
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,
        # Stable operationIds from one reviewed table (code generators name methods after them).
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
        # Exact paths: `/rooms/` is a problem+json 404 naming `/rooms`, not a bodyless 307.
        redirect_slashes=False,
    )
    install_openapi(app, documented_paths)
    install_webhook_docs(app.webhooks)
    install_asyncapi(app)
    install_docs(app, f"{API_PREFIX}/openapi.json")
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(exposition.router)
    for router in MATCH_ORDER:
        app.include_router(router, prefix=API_PREFIX)
    sio = create_socketio_server(settings.MAX_WS_FRAME_BYTES)
    bind_handlers(sio, app.state)
    app.state.sio = sio
    sockets = socketio_asgi_app(sio)
    app.mount(SOCKETIO_PREFIX.rstrip("/"), sockets)
    app.socketio_websockets = sockets
    if settings.DEMO_ENABLED:
        from app.demo.routes import install_demo

        install_demo(app, settings)
    # Innermost first: keyless calls are refused before their body is read; the request log
    # (outermost) sees the 401/408/413 the others answer.
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(SingleQueryValueMiddleware)
    app.add_middleware(RequireKeyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(metrics.HttpMetricsMiddleware)
    app.fast_lane = FastLane(
        app,
        app.full_stack,
        [(API_PREFIX, router) for router in MATCH_ORDER],
        max_body_bytes=settings.MAX_REQUEST_BODY_BYTES,
    )
    return app
