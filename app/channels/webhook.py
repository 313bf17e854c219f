"""The webhook channel: Standard Webhooks requests to a client's endpoint.

Body `{"type","timestamp","data"}`; headers `webhook-id` (the delivery id, stable across
retries so receivers dedupe), `webhook-timestamp` and `webhook-signature` (`v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per secret while a rotation is in progress), so
the `standardwebhooks` and `svix` libraries verify it. Every connection goes through the SSRF
guard (app/channels/ssrf.py). One AsyncClient per channel instance, i.e. per worker event loop,
keeps connections to busy endpoints alive between deliveries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from app.channels.base import (
    MAX_REPLY_BYTES,
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    truncate_reply,
)
from app.channels.ssrf import GuardedTransport, Resolver, TargetRefused, TargetUnresolvable
from app.core.clock import monotonic, utcnow

SECRET_PREFIX = "whsec_"
# A Retry-After longer than this is treated as this (the retry schedule still applies after).
MAX_RETRY_AFTER_SECONDS = 86_400.0
# Connections one channel instance (one worker loop) keeps open, all of them kept alive, and
# requests in flight at once. Requests beyond this wait on a semaphore, not in httpcore's
# pool queue: the pool scans every queued request against every connection whenever one is
# released, which profiled at most of a worker's CPU with 400 deliveries in flight; and
# httpx's default of 20 kept-alive connections closed and reopened the other 80 per request.
MAX_CONNECTIONS = 100


def sign(secrets: tuple[str, ...] | list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,<sig>` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    parts = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(digest).decode())
    return " ".join(parts)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class WebhookChannel:
    """Signs and POSTs; maps the answer to an Outcome (DESIGN.md §4)."""

    name = "webhook"

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 15.0,
        max_in_flight_per_endpoint: int = 4,
        busy_retry_after: float = 5.0,
        resolver: Resolver | None = None,
    ) -> None:
        self._timeout = timeout
        self._cap = max_in_flight_per_endpoint
        self._busy_retry_after = busy_retry_after
        self._in_flight: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(allow_private=allow_private, resolver=resolver),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
            follow_redirects=False,  # a redirect could lead anywhere; the guard checks one URL
            trust_env=False,
            headers={"user-agent": "ChatAPI-Webhooks/1.0"},
        )

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """One POST to the endpoint, unless the endpoint already has its cap in flight."""
        endpoint = target.endpoint
        if endpoint is None:
            return Outcome(OutcomeKind.FAILED, error="webhook delivery needs an endpoint")
        if not isinstance(content.get("event_type"), str):
            return Outcome(OutcomeKind.FAILED, error="webhook content needs an event_type")
        if not endpoint.secrets:
            return Outcome(OutcomeKind.FAILED, error="webhook endpoint has no signing secret")
        # The cap answers "busy, retry soon" instead of waiting: a waiting task would hold a
        # worker slot (prefetch 1) doing nothing while other endpoints' deliveries queue.
        if self._in_flight[endpoint.id] >= self._cap:
            return Outcome(
                OutcomeKind.RETRY,
                retry_after=self._busy_retry_after,
                error=f"endpoint has {self._cap} deliveries in flight",
            )
        self._in_flight[endpoint.id] += 1
        started = monotonic()
        try:
            async with self._slots:
                started = monotonic()  # the attempt's duration is the request's, not the wait
                outcome = await asyncio.wait_for(self._post(target, content, ctx), self._timeout)
        except asyncio.TimeoutError:
            # httpx's timeouts are per read/write; this one bounds a receiver that trickles.
            outcome = Outcome(
                OutcomeKind.RETRY, error=f"timeout: no complete answer within {self._timeout}s"
            )
        finally:
            self._in_flight[endpoint.id] -= 1
            if self._in_flight[endpoint.id] <= 0:
                del self._in_flight[endpoint.id]
        return replace(outcome, duration_ms=(monotonic() - started) * 1000)

    async def _post(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        assert target.endpoint is not None
        body = orjson.dumps(
            {
                "type": content.get("event_type"),
                "timestamp": ctx.created_at.astimezone(timezone.utc)
                .isoformat()
                .replace("+00:00", "Z"),
                "data": content.get("payload", {}),
            }
        )
        timestamp = int(utcnow().timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": target.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(target.endpoint.secrets, target.delivery_id, timestamp, body),
        }
        request = self._client.build_request(
            "POST", target.endpoint.url, content=body, headers=headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except TargetRefused as exc:
            return Outcome(OutcomeKind.FAILED, error=str(exc))
        except TargetUnresolvable as exc:
            return Outcome(OutcomeKind.RETRY, error=str(exc))
        except httpx.TimeoutException as exc:
            return Outcome(OutcomeKind.RETRY, error=f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}")
        try:
            reply = await _read_prefix(response)
        finally:
            await response.aclose()
        return _classify(response, reply)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()


async def _read_prefix(response: httpx.Response) -> str | None:
    # Only the first MAX_REPLY_BYTES are kept, so a huge answer is not downloaded.
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_REPLY_BYTES:
                break
    except httpx.HTTPError:
        pass  # the status already decides; a broken body only shortens the reply
    return truncate_reply(b"".join(chunks))


def _classify(response: httpx.Response, reply: str | None) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(OutcomeKind.DELIVERED, response_code=status, reply=reply)
    if status == 410:
        # "Gone": the receiver asks never to be called again; the service disables the endpoint.
        return Outcome(
            OutcomeKind.FAILED,
            response_code=status,
            reply=reply,
            error="endpoint answered 410 Gone",
            disable_endpoint=True,
        )
    error = f"HTTP {status}"
    if 300 <= status < 400:
        error += f": redirect to {response.headers.get('location', '?')} not followed"
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
    return Outcome(
        OutcomeKind.RETRY, retry_after=retry_after, response_code=status, reply=reply, error=error
    )


def create(ctx: ChannelFactoryContext) -> WebhookChannel:
    """Entry point `webhook`."""
    return WebhookChannel(
        allow_private=ctx.allow_private_targets,
        timeout=ctx.webhook_timeout_seconds,
        max_in_flight_per_endpoint=ctx.webhook_max_in_flight_per_endpoint,
    )
