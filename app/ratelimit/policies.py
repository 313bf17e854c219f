"""Who is limited to what (API.md §8): per key and per client on the HTTP API, per
inbound hook on ingestion, per channel on notifications.

Every limit is a clock-aligned fixed window (app/ratelimit/windows.py) in the `limits`
storage: this process's memory in embedded mode, Redis when REDIS_URL is set, so every API
process and worker shares the counts. Defaults come from the RATE_LIMIT_* settings; a
client overrides them with `PATCH /clients/me {"settings": {"rate_limits": {...}}}`, read here through a
short per-process cache that a settings change clears in every process (broadcast).

(Client → server real-time events are limited per connection by a token bucket in
app/realtime/connection.py: a connection lives in one process, so it needs no storage.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import orjson
from fastapi import Request
from limits import (
    RateLimitItem,
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerSecond,
)
from limits.aio.storage import MemoryStorage, Storage
from sqlalchemy import select
from sqlmodel import col

from app.auth.principal import KeyKind, Principal
from app.channels.base import Quota
from app.core.broadcast import Broadcast
from app.core.clock import monotonic
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import RateLimited
from app.ratelimit.fail_open import FailOpen
from app.ratelimit.windows import WindowCounter, WindowStats

log = logging.getLogger("chatapi.ratelimit")

CHANGED_CHANNEL = "ratelimit.client-changed"
#: How long a process trusts its copy of a client's limits (a lost broadcast heals by then).
CACHE_SECONDS = 5.0
#: The request-state attribute the headers middleware reads.
STATE_KEY = "ratelimit"
# Whose budget a refusal was over, as its detail says.
PER_KEY = "per API key"
PER_CLIENT = "for the whole client (all its keys together)"
PER_HOOK = "for this hook"
PER_ADDRESS = "per source address"


#: Each client limit → the setting holding its deployment default.
DEFAULT_SETTING = {
    "requests_per_minute": "RATE_LIMIT_REQUESTS_PER_MINUTE",
    "client_requests_per_minute": "RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE",
    "emails_per_hour": "RATE_LIMIT_EMAILS_PER_HOUR",
    "sms_per_hour": "RATE_LIMIT_SMS_PER_HOUR",
    "webhooks_per_second_per_endpoint": "RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT",
}


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """A client's effective limits (its overrides over the deployment defaults, within its
    caps), or its caps."""

    requests_per_minute: int
    client_requests_per_minute: int
    emails_per_hour: int
    sms_per_hour: int
    webhooks_per_second_per_endpoint: int

    @classmethod
    def defaults(cls, settings: Settings) -> ClientLimits:
        """The deployment's defaults (RATE_LIMIT_* settings)."""
        return cls(**{name: getattr(settings, var) for name, var in DEFAULT_SETTING.items()})

    @classmethod
    def caps(cls, settings: Settings, stored: dict[str, Any]) -> ClientLimits:
        """The most the client may set each limit to: what the operator granted it (stored
        `rate_limit_caps`, set with the admin key), else the deployment's RATE_LIMIT_MAX_*."""
        values = {name: settings.rate_limit_cap(var) for name, var in DEFAULT_SETTING.items()}
        values.update(granted_caps(stored))
        return cls(**values)

    @classmethod
    def from_stored(cls, settings: Settings, stored: dict[str, Any]) -> ClientLimits:
        """The defaults with the client's stored `rate_limits` over them, each held to its
        cap (a value stored before the caps existed, or above a cap lowered since, counts
        as the cap); a stored value that is not a positive whole number is ignored."""
        values = {f.name: getattr(cls.defaults(settings), f.name) for f in fields(cls)}
        values.update(_positive_ints(stored.get("rate_limits")))
        caps = cls.caps(settings, stored)
        return cls(**{name: min(value, getattr(caps, name)) for name, value in values.items()})


def granted_caps(stored: dict[str, Any]) -> dict[str, int]:
    """The caps the operator granted this client (its stored `rate_limit_caps`), by limit."""
    return _positive_ints(stored.get("rate_limit_caps"))


def _positive_ints(stored: Any) -> dict[str, int]:
    if not isinstance(stored, dict):
        return {}
    return {
        name: value
        for name in DEFAULT_SETTING
        if isinstance(value := stored.get(name), int) and not isinstance(value, bool) and value > 0
    }


class RateLimitPolicies:
    """The process's limits: one per process, built by the composition root."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        db: Database,
        broadcast: Broadcast,
        fail_open: FailOpen | None = None,
    ) -> None:
        self.settings = settings
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.counter = WindowCounter(storage)
        self.fail_open = fail_open or FailOpen()
        # A remote storage answers two hits in one round trip when they run together;
        # in memory, awaiting them in turn is cheaper than making tasks.
        self._concurrent = not isinstance(storage, MemoryStorage)
        self._db = db
        self._broadcast = broadcast
        self._cache: dict[str, tuple[ClientLimits, float]] = {}
        # One read per client at a time: when the cache runs out under load, every
        # delivery and request in flight for the client would otherwise read it at once
        # (a worker with 400 deliveries in flight: 400 reads queueing for 30 connections).
        self._reading: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Hear other processes' settings changes."""
        await self._broadcast.subscribe(CHANGED_CHANNEL, self._on_changed)

    async def stop(self) -> None:
        """Stop hearing them."""
        await self._broadcast.unsubscribe(CHANGED_CHANNEL, self._on_changed)

    async def _on_changed(self, message: bytes) -> None:
        self.forget(str(orjson.loads(message)["client_id"]))

    def forget(self, client_id: str) -> None:
        """Drop this process's copy of the client's limits."""
        self._cache.pop(client_id, None)

    async def announce_changed(self, client_id: str) -> None:
        """A client's limits changed (call after the commit): every process re-reads them."""
        self.forget(client_id)
        try:
            await self._broadcast.publish(CHANGED_CHANNEL, orjson.dumps({"client_id": client_id}))
        except Exception:  # the cache expires within CACHE_SECONDS anyway
            log.exception("could not announce a rate limit change")

    async def limits_for(self, client_id: str) -> ClientLimits:
        """The client's effective limits (cached for CACHE_SECONDS)."""
        cached = self._cache.get(client_id)
        now = monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        lock = self._reading.setdefault(client_id, asyncio.Lock())
        try:
            async with lock:
                cached = self._cache.get(client_id)  # read meanwhile by whoever held the lock
                now = monotonic()
                if cached is not None and cached[1] > now:
                    return cached[0]
                limits = await self._read(client_id)
                self._cache[client_id] = (limits, now + CACHE_SECONDS)
                return limits
        finally:
            # Waiters still hold this lock and find the cache filled; a newcomer meanwhile
            # finds it filled too, or at worst reads once more.
            if self._reading.get(client_id) is lock:
                del self._reading[client_id]

    async def _read(self, client_id: str) -> ClientLimits:
        from app.tenants.models import Client  # the tenants package imports this one

        async with self._db.read_session() as session:
            row = await session.execute(
                select(col(Client.settings)).where(col(Client.id) == client_id)
            )
            stored = row.scalar_one_or_none()
        return ClientLimits.from_stored(self.settings, dict(stored or {}))

    async def _hit(self, limit: str, item: RateLimitItem, *ids: str) -> WindowStats | None:
        # Fail open (app/ratelimit/fail_open.py): None, as if limits were off, when the
        # storage does not answer.
        try:
            stats = await self.counter.hit(item, *ids)
        except Exception as exc:
            self.fail_open.failed(limit, exc)
            return None
        self.fail_open.succeeded()
        return stats

    async def hit_request(self, principal: Principal) -> WindowStats | None:
        """Count one API request of `principal` per key and per client; the tighter of the
        two verdicts (None when limits are off)."""
        if not self.enabled:
            return None
        if principal.kind is KeyKind.admin or principal.client_id is None:
            item = RateLimitItemPerMinute(self.settings.RATE_LIMIT_REQUESTS_PER_MINUTE, 1, "rk")
            return _scoped(await self._hit("requests", item, principal.key_id), PER_KEY)
        limits = await self.limits_for(principal.client_id)
        per_key = RateLimitItemPerMinute(limits.requests_per_minute, 1, "rk")
        per_client = RateLimitItemPerMinute(limits.client_requests_per_minute, 1, "rc")
        try:
            key_stats, client_stats = await self.counter.hit_many(
                [(per_key, (principal.key_id,)), (per_client, (principal.client_id,))]
            )
        except Exception as exc:  # fail open, as in _hit: one request uncounted
            self.fail_open.failed("requests", exc)
            return None
        self.fail_open.succeeded()
        return _tighter(replace(key_stats, scope=PER_KEY), replace(client_stats, scope=PER_CLIENT))

    async def hit_inbound(self, hook_id: str, per_minute: int | None = None) -> WindowStats | None:
        """Count one event received on inbound hook `hook_id` (None when limits are off)."""
        if not self.enabled:
            return None
        amount = per_minute or self.settings.RATE_LIMIT_INBOUND_PER_MINUTE
        item = RateLimitItemPerMinute(amount, 1, "ih")
        return _scoped(await self._hit("inbound", item, hook_id), PER_HOOK)

    async def hit_provider_events(self, client_id: str) -> WindowStats | None:
        """Count one verified delivery-event request of the client's providers (None when
        limits are off)."""
        if not self.enabled:
            return None
        amount = self.settings.RATE_LIMIT_PROVIDER_EVENTS_PER_MINUTE
        item = RateLimitItemPerMinute(amount, 1, "pe")
        return _scoped(await self._hit("provider_events", item, client_id), PER_CLIENT)

    async def hit_inbound_unverified(self, address: str, hook_id: str | None) -> WindowStats | None:
        """Count one inbound request that failed verification (bad or no signature, or a URL
        with no hook): per source address, and per hook when the URL names one; the tighter
        verdict (None when limits are off). Never the hook's own budget (`hit_inbound`)."""
        if not self.enabled:
            return None
        settings = self.settings
        per_address = RateLimitItemPerMinute(
            settings.RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE_PER_ADDRESS, 1, "iua"
        )
        if hook_id is None:
            # An unknown URL names no hook: counting per attacker-chosen URL would only fill
            # the counter storage.
            return replace(await self.counter.hit(per_address, address), scope=PER_ADDRESS)
        per_hook = RateLimitItemPerMinute(
            settings.RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE, 1, "iuh"
        )
        if self._concurrent:
            address_stats, hook_stats = await asyncio.gather(
                self.counter.hit(per_address, address), self.counter.hit(per_hook, hook_id)
            )
        else:
            address_stats = await self.counter.hit(per_address, address)
            hook_stats = await self.counter.hit(per_hook, hook_id)
        return _tighter(
            replace(address_stats, scope=PER_ADDRESS), replace(hook_stats, scope=PER_HOOK)
        )

    async def hit_demo_login(self, address: str) -> WindowStats | None:
        """Count one browser-demo login from `address` (None when limits are off)."""
        if not self.enabled:
            return None
        item = RateLimitItemPerMinute(self.settings.DEMO_LOGINS_PER_MINUTE, 1, "dl")
        return _scoped(await self._hit("demo_login", item, address), "per address")

    async def hit_channel(
        self, client_id: str, quota: Callable[[ClientLimits], Quota | None]
    ) -> WindowStats | None:
        """Count one send against the quota its channel names for the client's limits
        (`Channel.quota`: e-mails per hour per client, webhooks per second per endpoint,
        a plug-in's own). None for a delivery without a quota (or limits off)."""
        if not self.enabled:
            return None
        q = quota(await self.limits_for(client_id))
        if q is None:
            return None
        item = QUOTA_ITEMS[q.per](q.limit, 1, q.namespace)
        return await self._hit("channel_quota", item, *q.key)


QUOTA_ITEMS: dict[str, type[RateLimitItem]] = {
    "second": RateLimitItemPerSecond,
    "minute": RateLimitItemPerMinute,
    "hour": RateLimitItemPerHour,
    "day": RateLimitItemPerDay,
}


def _scoped(stats: WindowStats | None, scope: str) -> WindowStats | None:
    return None if stats is None else replace(stats, scope=scope)


def _tighter(a: WindowStats, b: WindowStats) -> WindowStats:
    if a.allowed != b.allowed:
        return b if a.allowed else a
    return a if a.remaining <= b.remaining else b


def _policies(request: Request) -> RateLimitPolicies:
    policies: RateLimitPolicies = request.app.state.limits
    return policies


def _enforce(request: Request, stats: WindowStats | None, label: str, what: str) -> None:
    """Record `stats` for the RateLimit-* headers; over the limit, a 429 whose detail names
    the limit, its window and whose budget it is (`label`: the metric's, kept stable)."""
    if stats is None:
        return
    # Request.state is the ASGI scope's "state": the headers middleware reads it there.
    setattr(request.state, STATE_KEY, stats)
    if not stats.allowed:
        from app.observability import metrics

        metrics.RATE_LIMITED.labels(label).inc()
        retry = stats.reset_in()
        whose = f" {stats.scope}" if stats.scope else ""
        raise RateLimited(
            f"Rate limit exceeded: {stats.limit} {what} per {stats.window()}{whose}; "
            f"the window resets in {retry} s",
            retry_after=retry,
        )


async def _counted(hit: Awaitable[WindowStats | None]) -> WindowStats | None:
    # Fail open: when the counters' storage (Redis) is down, requests go on uncounted and
    # without RateLimit-* headers (the policies' hits answer None then, and count it: app/
    # ratelimit/fail_open.py). A limiter outage must not become an API outage: a send
    # accepted then is stored and delivered once Redis returns. Anything else that fails
    # on the way (reading a client's limits) fails open too.
    try:
        return await hit
    except Exception as exc:
        log.warning("rate limit unavailable; request not counted: %r", exc)
        return None


async def enforce_request(request: Request, principal: Principal) -> None:
    """Count the request (per key and per client): RateLimit-* headers on the answer,
    429 problem with Retry-After over the limit. Called by the authentication dependency."""
    stats = await _counted(_policies(request).hit_request(principal))
    _enforce(request, stats, "requests per window", "requests")


async def hit_inbound(request: Request, hook_id: str, per_minute: int | None = None) -> None:
    """The inbound-hook limit for a route: count one event on `hook_id`; RateLimit-*
    headers on the answer, 429 problem with Retry-After over the limit."""
    stats = await _counted(_policies(request).hit_inbound(hook_id, per_minute))
    _enforce(request, stats, "inbound events per minute", "inbound events")


async def hit_provider_events(request: Request, client_id: str) -> None:
    """The provider-events limit for a route: count one verified request for the client;
    RateLimit-* headers on the answer, 429 problem with Retry-After over the limit."""
    stats = await _counted(_policies(request).hit_provider_events(client_id))
    _enforce(request, stats, "provider events per minute", "provider event requests")


async def hit_inbound_unverified(request: Request, hook_id: str | None) -> None:
    """The unverified inbound budgets for a route: count one request that failed
    verification per source address (`source_address`) and per hook; 429 problem with
    Retry-After over either, otherwise the caller's own refusal (401, 404) stands."""
    stats = await _counted(
        _policies(request).hit_inbound_unverified(source_address(request), hook_id)
    )
    _enforce(
        request, stats, "unverified inbound requests per minute", "unverified inbound requests"
    )


def source_address(request: Request) -> str:
    """The caller's address: the socket peer, or the client that a proxy the server trusts
    names in X-Forwarded-For (`chatapi serve` runs uvicorn with proxy headers on, trusting
    only the peers in FORWARDED_ALLOW_IPS, default 127.0.0.1 and ::1)."""
    return request.client.host if request.client else "unknown"


async def hit_demo_login(request: Request, address: str) -> None:
    """The browser demo's login limit for a route: count one login from `address`; 429
    problem with Retry-After over DEMO_LOGINS_PER_MINUTE (each login costs a bcrypt hash)."""
    stats = await _counted(_policies(request).hit_demo_login(address))
    _enforce(request, stats, "demo logins per minute", "demo logins")
