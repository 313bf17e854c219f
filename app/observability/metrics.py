"""Prometheus metrics (API.md §8): the series every part counts in; `GET /metrics`
(app/observability/exposition.py) serves them in the text exposition format.

Multiprocess-safe: `chatapi serve` and `chatapi worker` point PROMETHEUS_MULTIPROC_DIR at a
directory before prometheus-client is imported (app/observability/multiproc.py), so every
uvicorn worker and Celery process writes its series there and `/metrics` merges them
(prometheus-client's MultiProcessCollector). Without the variable (tests, a bare
`uvicorn app.main:create_app`) the process's own registry is served. Which one is the
runtime's choice (`Runtime.metrics`, app/compose.py).
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "chatapi_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "chatapi_http_request_duration_seconds",
    "HTTP request latency, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LIVE_CONNECTIONS = Gauge(
    "chatapi_live_connections",
    "Open real-time connections, by transport.",
    ["transport"],
    multiprocess_mode="livesum",
)
# No event-name label: names are not a closed set, and labels must stay bounded.
EVENTS_PUBLISHED = Counter("chatapi_events_published_total", "Events published on the event bus.")
DELIVERIES = Counter(
    "chatapi_deliveries_total",
    "Delivery attempts, by channel and outcome (delivered, retry, failed, skipped).",
    ["channel", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "chatapi_delivery_latency_seconds",
    "From a notification's acceptance to a delivery's success, by channel.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400),
)
DELIVERY_RETRIES = Counter(
    "chatapi_delivery_retries_total", "Attempts that will be retried, by channel.", ["channel"]
)
DEAD_LETTERS = Counter(
    "chatapi_delivery_dead_letters_total",
    "Deliveries that ended failed (the dead letter), by channel.",
    ["channel"],
)
DEFERRALS = Counter(
    "chatapi_delivery_deferrals_total",
    "Deliveries put back unspent by our own limits (quota, in-flight cap, shutdown), by channel.",
    ["channel"],
)
# By provider *type*, not the tenant's provider name: names are per tenant, labels must stay
# bounded. The per-provider figures of one tenant are in /analytics/summary.
PROVIDER_ATTEMPTS = Counter(
    "chatapi_provider_attempts_total",
    "Tries of a provider (e-mail, SMS, push), by channel, provider type and outcome: "
    "delivered, retry, failed, or failed_over (it failed and the next provider took the "
    "message in the same attempt); delivered / all is the provider type's delivery rate.",
    ["channel", "provider_type", "outcome"],
)
#: The outcome label of a provider that failed and handed the message to the next one.
FAILED_OVER = "failed_over"
PROVIDER_EVENTS = Counter(
    "chatapi_provider_events_total",
    "Delivery events providers reported (delivered, bounced, complained, failed), by provider "
    "type and kind.",
    ["provider_type", "kind"],
)
INBOUND_EVENTS = Counter(
    "chatapi_inbound_events_total", "Inbound hook events received, by outcome.", ["outcome"]
)
RATE_LIMITED = Counter(
    "chatapi_rate_limited_total", "Requests refused with 429, by limit.", ["limit"]
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "chatapi_rate_limit_fail_open_total",
    "Hits the limits' shared storage (Redis) could not count, by limit (requests, inbound, "
    "demo_login, channel_quota: let through uncounted; wrong_secret: counted in the process).",
    ["limit"],
)


def observe_delivery(
    channel: str,
    outcome: str,
    *,
    accepted_at: datetime | None,
    now: datetime,
    final: bool,
    provider_type: str | None = None,
    failed_over: tuple[str, ...] = (),
) -> None:
    """Count one attempt's outcome; `final` when a failure is the delivery's last word."""
    DELIVERIES.labels(channel, outcome).inc()
    if provider_type is not None:
        PROVIDER_ATTEMPTS.labels(channel, provider_type, outcome).inc()
        for failed_type in failed_over:
            PROVIDER_ATTEMPTS.labels(channel, failed_type, FAILED_OVER).inc()
    if outcome == "delivered" and accepted_at is not None:
        DELIVERY_LATENCY.labels(channel).observe(max(0.0, (now - accepted_at).total_seconds()))
    elif outcome == "retry" and not final:
        DELIVERY_RETRIES.labels(channel).inc()
    if final and outcome in ("failed", "retry"):
        DEAD_LETTERS.labels(channel).inc()


def count_provider_event(provider_type: str, kind: str) -> None:
    """Count one stored (not duplicate) provider delivery event."""
    PROVIDER_EVENTS.labels(provider_type, kind).inc()


def count_inbound(outcome: str) -> None:
    """Count one inbound POST by outcome: accepted, duplicate, rejected (signature),
    unknown_hook, disabled, too_large, limited, refused (another 4xx) or error."""
    INBOUND_EVENTS.labels(outcome).inc()


class HttpMetricsMiddleware:
    """Pure ASGI: count and time every HTTP request by its route template (bounded labels:
    `/rooms/{room_id}`, never the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Route object → its full template. FastAPI's route of an included router knows
        # only its path below the including prefix, so the template is looked up once per
        # route in the OpenAPI route table (bounded: one entry per route).
        self._templates: dict[int, str] = {}

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return "<unmatched>"
        known = self._templates.get(id(route))
        if known is None:
            from app.core.openapi import route_table

            documented = route_table(scope["app"]).template(scope["method"], scope["path"])
            known = documented or str(getattr(route, "path", "<unmatched>"))
            self._templates[id(route)] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            observe_http(scope["method"], self._template(scope), status, started)


def observe_http(method: str, template: str, status: int, started: float) -> None:
    """Count and time one finished request (`started`: perf_counter) by its route template."""
    HTTP_REQUESTS.labels(method, template, str(status)).inc()
    HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - started)


def multiproc_registry() -> CollectorRegistry | None:
    """A registry merging every process's series, in multiprocess mode (else None)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
