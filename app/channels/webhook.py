"""The webhook channel: Standard Webhooks requests to a client's endpoint.

Body `{"type","timestamp","data"}`; headers `webhook-id` (the delivery id, stable across
retries so receivers dedupe), `webhook-timestamp` and `webhook-signature` (`v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per secret while a rotation is in progress), so
the `standardwebhooks` and `svix` libraries verify it. Every connection goes through the SSRF
guard (app/channels/ssrf.py). One aiohttp session per channel instance, i.e. per worker event
loop, keeps connections to busy endpoints alive between deliveries.

aiohttp rather than httpx: with a hundred connections in flight httpx + httpcore cost ~3 ms of
CPU per request here (httpcore's pool checks every connection on each request and release),
aiohttp ~0.3 ms (bench/README.md, P4).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

import aiohttp
import orjson
from pydantic import BaseModel

from app.channels.base import (
    MAX_REPLY_BYTES,
    ChannelContext,
    ChannelFactoryContext,
    ContentError,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    PlannedDelivery,
    Quota,
    Resolved,
    TenantLimits,
    WebhookEndpoint,
    truncate_reply,
)
from app.channels.capacity import InFlightCap
from app.channels.content import WebhookContent
from app.channels.driver import BaseChannel
from app.channels.ssrf import (
    Resolver,
    TargetRefused,
    TargetUnresolvable,
    guarded_connector,
    webhook_refusal,
)
from app.core.clock import monotonic, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SECRET_PREFIX = "whsec_"
# A Retry-After longer than this is treated as this (the retry schedule still applies after).
MAX_RETRY_AFTER_SECONDS = 86_400.0
# Connections one channel instance (one worker loop) keeps open, all of them kept alive, and
# requests in flight at once. Requests beyond this wait on a semaphore rather than in the
# connector's queue, so the per-request timeout counts the request, not the wait.
MAX_CONNECTIONS = 100
USER_AGENT = "ChatAPI-Webhooks/1.0"


class EndpointRef(Protocol):
    """An endpoint as a send's expansion sees it."""

    @property
    def id(self) -> str: ...

    @property
    def disabled(self) -> bool: ...


class WebhookEndpoints(Protocol):
    """Where the channel finds a tenant's endpoints (registered by the runtime)."""

    async def subscribed(
        self, session: AsyncSession, client_id: str, event_type: str
    ) -> Sequence[EndpointRef]:
        """The client's enabled endpoints that receive `event_type`."""
        ...

    async def by_ids(
        self, session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
    ) -> Sequence[EndpointRef]:
        """The client's endpoints among `endpoint_ids`."""
        ...

    async def for_delivery(
        self, session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
    ) -> Mapping[str, WebhookEndpoint]:
        """The enabled ones among `endpoint_ids`, by id, with opened secrets."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookTarget(DeliveryTarget):
    """A webhook delivery's endpoint, loaded with its signing secrets."""

    endpoint: WebhookEndpoint | None = None


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


class WebhookChannel(BaseChannel):
    """Signs and POSTs; maps the answer to an Outcome (DESIGN.md §4)."""

    name = "webhook"
    content_model = WebhookContent
    needs_recipients = False  # it goes to the tenant's endpoints
    reaches_users = False  # so no user's preference turns it off

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 15.0,
        max_in_flight_per_endpoint: int = 4,
        resolver: Resolver | None = None,
        endpoints: WebhookEndpoints | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._timeout = timeout
        self._allow_private = allow_private
        self._resolver = resolver
        # Requests in flight per endpoint id (app/channels/capacity.py).
        self.capacity = InFlightCap(max_in_flight_per_endpoint)
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        # Built on first use: an aiohttp session belongs to the loop it is made on, and
        # channels are loaded before the worker's loop runs.
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(
                    allow_private=self._allow_private,
                    limit=MAX_CONNECTIONS,
                    resolver=self._resolver,
                ),
                # The whole request: connect, send, the answer's head and the body we read.
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"user-agent": USER_AGENT},
                # The reply is stored as text: ask for it uncompressed, keep the raw bytes.
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # no state carried between deliveries
                trust_env=False,  # an environment proxy would connect for us, unchecked
            )
        return self._session

    def capacity_key(self, target: DeliveryTarget) -> str | None:
        """Requests are capped per endpoint."""
        endpoint = target.endpoint if isinstance(target, WebhookTarget) else None
        return endpoint.id if endpoint is not None else None

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """One POST to the endpoint, unless the endpoint already has its cap in flight."""
        endpoint = target.endpoint if isinstance(target, WebhookTarget) else None
        if endpoint is None:
            return Outcome(OutcomeKind.FAILED, error="webhook delivery needs an endpoint")
        if not isinstance(content.get("event_type"), str):
            return Outcome(OutcomeKind.FAILED, error="webhook content needs an event_type")
        if not endpoint.secrets:
            return Outcome(OutcomeKind.FAILED, error="webhook endpoint has no signing secret")
        # A full cap defers instead of waiting: a waiting task would hold a worker slot
        # (prefetch 1) doing nothing while other endpoints' deliveries queue. The refusal is
        # ours, not an attempt; the engine sends the delivery when a slot frees.
        acquired = not ctx.capacity_held
        if acquired and not self.capacity.try_acquire(endpoint.id):
            return Outcome(
                OutcomeKind.DEFER,
                capacity_key=endpoint.id,
                error=f"endpoint has {self.capacity.limit} deliveries in flight",
            )
        started = monotonic()
        try:
            async with self._slots:
                started = monotonic()  # the attempt's duration is the request's, not the wait
                outcome = await self._post(target, content, ctx)
        finally:
            if acquired:
                self.capacity.release(endpoint.id)
        return replace(outcome, duration_ms=(monotonic() - started) * 1000)

    async def _post(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        assert isinstance(target, WebhookTarget) and target.endpoint is not None
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
        try:
            async with self._client().post(
                target.endpoint.url,
                data=body,
                headers=headers,
                allow_redirects=False,  # a redirect could lead anywhere; the guard checked one
            ) as response:
                reply = await _read_prefix(response)
                return _classify(response.status, response.headers.get, reply)
        except TargetRefused as exc:
            return Outcome(OutcomeKind.FAILED, error=webhook_refusal(exc))
        except TargetUnresolvable as exc:
            return Outcome(OutcomeKind.RETRY, error=str(exc))
        except asyncio.TimeoutError:
            # The session's total timeout bounds the whole request, so a receiver that
            # trickles its answer times out too (aiohttp's timeouts are TimeoutErrors).
            return Outcome(
                OutcomeKind.RETRY, error=f"timeout: no complete answer within {self._timeout}s"
            )
        except aiohttp.ClientError as exc:
            return Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- driver methods (app/channels/driver.py)

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The event as stored: which endpoints it goes to is the deliveries' business."""
        return content.model_dump(mode="json", exclude={"endpoint_ids"})

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """One delivery per endpoint: those named (each must exist and be enabled), else
        every enabled endpoint subscribed to the event type; recipients play no part."""
        assert isinstance(content, WebhookContent)
        if self._endpoints is None:
            raise ContentError("webhooks are not available in this process")
        wanted = content.endpoint_ids
        if wanted is None:
            endpoints = await self._endpoints.subscribed(session, client_id, content.event_type)
        else:
            wanted = list(dict.fromkeys(wanted))
            endpoints = await self._endpoints.by_ids(session, client_id, wanted)
            found = {e.id for e in endpoints}
            unknown = [e for e in wanted if e not in found]
            if unknown:
                raise ContentError(f"unknown endpoint(s): {', '.join(unknown)}")
            disabled = [e.id for e in endpoints if e.disabled]
            if disabled:
                raise ContentError(f"disabled endpoint(s): {', '.join(disabled)}")
        return [PlannedDelivery({"endpoint_id": e.id}, endpoint_id=e.id) for e in endpoints]

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """The batch's endpoints with their opened secrets, in one read. An endpoint gone,
        disabled or whose secret cannot be opened fails its deliveries; the rest go out."""
        ids = sorted({t.endpoint_id for t in targets if t.endpoint_id})
        found: Mapping[str, WebhookEndpoint] = {}
        if ids and self._endpoints is not None:
            found = await self._endpoints.for_delivery(session, client_id, ids)
        gone = Outcome(OutcomeKind.FAILED, error="the endpoint was deleted or disabled")
        out: dict[str, DeliveryTarget | Outcome] = {}
        for t in targets:
            endpoint = found.get(t.endpoint_id) if t.endpoint_id else None
            if t.endpoint_id and endpoint is None:
                out[t.delivery_id] = gone
                continue
            out[t.delivery_id] = WebhookTarget(
                t.delivery_id, t.client_id, t.user_id, t.recipient, t.endpoint_id, endpoint
            )
        return out

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """Requests per second per endpoint."""
        if target.endpoint_id is None:
            return None
        return Quota(
            limits.webhooks_per_second_per_endpoint,
            "second",
            (target.client_id, target.endpoint_id),
            "qw",
        )

    def reached_target(self, outcome: Outcome) -> bool:
        """The endpoint's health counts what it did: an answer, or its silence (a timeout,
        a refused connection: a RETRY without a code). Not our own refusals: a DEFER never
        went out, and a FAILED without a code (a deleted endpoint, an SSRF refusal) is ours."""
        if outcome.kind is OutcomeKind.DEFER:
            return False
        return outcome.response_code is not None or outcome.kind is OutcomeKind.RETRY


async def _read_prefix(response: aiohttp.ClientResponse) -> str | None:
    # Only the first MAX_REPLY_BYTES are kept, so a huge answer is not downloaded (leaving
    # the body unread makes aiohttp close that connection instead of reusing it).
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_REPLY_BYTES:
            chunk = await response.content.read(MAX_REPLY_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except aiohttp.ClientError as exc:
        if isinstance(exc, asyncio.TimeoutError):
            raise  # the whole request ran out of time: a timeout, whatever the status
        # Otherwise the status already decides; a broken body only shortens the reply.
    return truncate_reply(b"".join(chunks))


def _classify(status: int, header: Callable[[str], str | None], reply: str | None) -> Outcome:
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
        error += f": redirect to {header('location') or '?'} not followed"
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(header("retry-after"), utcnow())
    return Outcome(
        OutcomeKind.RETRY, retry_after=retry_after, response_code=status, reply=reply, error=error
    )


def create(ctx: ChannelFactoryContext) -> WebhookChannel:
    """Entry point `webhook`."""
    return WebhookChannel(
        allow_private=ctx.allow_private_targets,
        timeout=ctx.webhook_timeout_seconds,
        max_in_flight_per_endpoint=ctx.webhook_max_in_flight_per_endpoint,
        endpoints=cast("WebhookEndpoints | None", ctx.services.get(WebhookEndpoints)),
    )
