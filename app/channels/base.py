"""The one channel interface, its plain-data inputs and outcome, and the entry-point registry.

A channel turns one delivery into one attempt and says how it went (`Outcome`); it never
touches the database. The service builds the inputs from rows, calls `send`, and records the
attempt and the delivery's next state from the outcome. Channels are found through the
`chatapi.channels` entry-point group, built-ins included, so a pip-installed package adds one
without touching this code base (docs/channels.md).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core.config import Settings
    from app.providers.base import ProviderType
    from app.realtime.bus import EventBus
    from app.realtime.presence import Presence

log = logging.getLogger("chatapi.channels")

ENTRY_POINT_GROUP = "chatapi.channels"
# What an outcome keeps of a response body or SMTP reply (attempt rows stay small).
MAX_REPLY_BYTES = 4096


class OutcomeKind(str, enum.Enum):
    """How one attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"  # try again later (after `retry_after` when given)
    FAILED = "failed"  # permanent: retrying cannot help
    # Not attempted: one of our own limits refused it (an in-flight cap, a quota, a worker
    # shutting down). Never an attempt: the row goes back unspent, nothing is recorded, and
    # the target's health is untouched (DESIGN.md §4).
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, recorded as an attempt row by the service."""

    kind: OutcomeKind
    retry_after: float | None = None  # seconds; the receiver's Retry-After or a channel's hint
    response_code: int | None = None  # HTTP status or SMTP reply code
    reply: str | None = None  # response body or SMTP reply text, at most MAX_REPLY_BYTES
    duration_ms: float = 0.0
    error: str | None = None  # why it did not succeed, for humans
    served_by: str | None = None  # which provider answered (its name in /providers)
    provider_type: str | None = None  # that provider's type (`smtp`, `mailgun`): a metric label
    # The types of the providers that failed over before it within this attempt (metrics).
    failed_over: tuple[str, ...] = ()
    disable_endpoint: bool = False  # the receiver asked never to be called again (HTTP 410)
    # DEFER only: the in-flight cap's key that refused it (app/channels/capacity.py); the
    # delivery comes back when that key has a free slot. `retry_after` (DEFER): when it
    # is due again; None keeps the time it was due.
    capacity_key: str | None = None

    @property
    def delivered(self) -> bool:
        """True when the attempt delivered."""
        return self.kind is OutcomeKind.DELIVERED


def truncate_reply(text: str | bytes | None, limit: int = MAX_REPLY_BYTES) -> str | None:
    """`text` cut to at most `limit` UTF-8 bytes, never splitting a character."""
    if text is None:
        return None
    raw = text if isinstance(text, bytes) else text.encode()
    return raw[:limit].decode("utf-8", errors="ignore")


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """One SMTP server of a client's e-mail configuration (password already opened)."""

    host: str
    port: int
    from_email: str
    username: str | None = None
    password: str | None = None
    security: Literal["none", "starttls", "tls"] = "starttls"
    from_name: str | None = None


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """A client's SMTP server and the optional fallback tried when it is unavailable."""

    primary: SmtpServer
    fallback: SmtpServer | None = None


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A client's webhook endpoint with its signing secrets (opened, newest first)."""

    id: str
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Who or what one delivery goes to. A channel's `load_targets` may return a subclass
    carrying what it loaded for the batch (an endpoint, the tenant's configuration)."""

    delivery_id: str  # stable across retries: webhook-id, Message-ID, dedupe keys
    client_id: str
    user_id: str | None = None
    recipient: Mapping[str, Any] = field(default_factory=dict)  # the delivery's recipient
    endpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """What one attempt knows beyond its target and content."""

    notification_id: str
    created_at: datetime  # the notification's time (a webhook body's `timestamp`)
    attempt: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The caller already holds this attempt's slot of the channel's in-flight cap (and
    # releases it): the delivery engine takes it before counting the quota.
    capacity_held: bool = False


@dataclass(frozen=True, slots=True)
class RecipientUser:
    """A user a send names, resolved by the service."""

    id: str
    external_id: str | None
    email: str | None
    phone: str | None = None  # E.164


class PhoneNumber(str):
    """A send's bare phone number (`{"phone": ...}`, E.164), for the `sms` channel.

    A `str`, like a bare e-mail address, so a channel that knows only users and e-mail
    addresses (a plug-in written before phones) still takes it for an address it cannot
    reach rather than for a user; `address_recipient` tells the two apart."""

    __slots__ = ()


# A send's resolved recipient: a user, a bare e-mail address (`{"email": ...}`) or a bare
# phone number (`{"phone": ...}`, a PhoneNumber).
Resolved = RecipientUser | str


def address_recipient(address: str) -> dict[str, str]:
    """A bare address as a delivery's recipient: `{"phone": ...}` or `{"email": ...}`."""
    return {"phone": address} if isinstance(address, PhoneNumber) else {"email": address}


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One delivery a channel makes of a send (`expand`); stored by the service."""

    recipient: dict[str, Any]
    user_id: str | None = None
    endpoint_id: str | None = None
    skip_reason: str | None = None  # set: stored `skipped`, never sent


@dataclass(frozen=True, slots=True)
class Quota:
    """A channel's quota for one delivery: at most `limit` per `per` for `key` (counted in
    the shared limits storage, so every worker draws on one budget). Over it the delivery
    is deferred to the window's reset, never failed."""

    limit: int
    per: Literal["second", "minute", "hour", "day"]
    key: tuple[str, ...]  # whose budget: the client, an endpoint of it, ...
    namespace: str  # the counters' name, unique per quota (e.g. "qe": e-mails per hour)


class TenantLimits(Protocol):
    """A tenant's effective limits as a channel's quota reads them."""

    emails_per_hour: int
    sms_per_hour: int
    webhooks_per_second_per_endpoint: int


class ContentError(ValueError):
    """A send's content cannot go through this channel: the service answers 422 with it."""


@runtime_checkable
class Channel(Protocol):
    """Sends one delivery's content to its target and reports the outcome; never raises for
    failures of the other side (those are outcomes), only for bugs. A channel subclasses
    `app.channels.driver.BaseChannel`, which gives the driver methods' defaults."""

    name: str
    content_model: type[BaseModel]
    needs_recipients: bool
    stores_inbox_item: bool
    reaches_users: bool

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """Make one attempt."""
        ...

    def validate_content(self, raw: Any) -> BaseModel:
        """The send's content object for this channel, validated."""
        ...

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """What the notification stores of the content."""
        ...

    def content_event(self, content: BaseModel) -> str | None:
        """The event the content names, if any."""
        ...

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """The deliveries a send makes."""
        ...

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """A batch's targets, loaded."""
        ...

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """The delivery's quota, if any."""
        ...

    def reached_target(self, outcome: Outcome) -> bool:
        """Whether the outcome counts for the target's health."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections (at worker shutdown)."""
        ...


@runtime_checkable
class BatchSender(Protocol):
    """A channel that sends a batch of deliveries in one call (the driver interface's "send,
    batch where the service allows it"). The delivery engine uses it, when the channel has
    no in-flight cap, instead of one `send` per delivery; it counts the batch's quota
    first and hands over only what the quota allows."""

    async def send_batch(
        self,
        targets: Sequence[DeliveryTarget],
        contents: Sequence[dict[str, Any]],
        ctxs: Sequence[ChannelContext],
    ) -> list[Outcome]:
        """One attempt for each target (with the content and context at the same position);
        the outcomes, in order. Raising fails the batch's attempts as `send` raising would."""
        ...


@dataclass(slots=True)
class ChannelFactoryContext:
    """What a channel factory may use: the process's settings and real-time runtime.

    `bus`/`presence` are None where the process has no real-time runtime; a factory that
    needs them raises ChannelUnavailable and the channel is left out.
    """

    settings: Settings | None = None
    bus: EventBus | None = None
    presence: Presence | None = None
    allow_private_targets: bool = False
    webhook_timeout_seconds: float = 15.0
    webhook_max_in_flight_per_endpoint: int = 4
    smtp_timeout_seconds: float = 30.0
    smtp_allow_private_targets: bool = False
    smtp_allowed_hosts: tuple[str, ...] = ()
    # The domain services a channel may use (its targets, a tenant's configuration), by the
    # Protocol the channel asks for: a channel never imports another domain's code; the
    # composition root (app/runtime.py) registers the adapters.
    # A factory reads its own: `cast("Kind | None", ctx.services.get(Kind))`.
    services: Mapping[type, object] = field(default_factory=dict)
    # The process's provider types by name (app/providers), built once by the composition
    # root and closed by the runtime: the channels that deliver through providers share them.
    provider_types: Mapping[str, ProviderType] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        bus: EventBus | None = None,
        presence: Presence | None = None,
        services: Mapping[type, object] | None = None,
        provider_types: Mapping[str, ProviderType] | None = None,
    ) -> ChannelFactoryContext:
        """The context for a process running with `settings`."""
        return cls(
            settings=settings,
            bus=bus,
            presence=presence,
            services=dict(services or {}),
            provider_types=dict(provider_types or {}),
            allow_private_targets=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
            webhook_timeout_seconds=settings.WEBHOOK_TIMEOUT_SECONDS,
            webhook_max_in_flight_per_endpoint=settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT,
            smtp_timeout_seconds=settings.SMTP_TIMEOUT_SECONDS,
            smtp_allow_private_targets=settings.SMTP_ALLOW_PRIVATE_TARGETS,
            smtp_allowed_hosts=tuple(settings.SMTP_ALLOWED_HOSTS),
        )


class ChannelFactory(Protocol):
    """What a `chatapi.channels` entry point names: `create(ctx) -> Channel`."""

    def __call__(self, ctx: ChannelFactoryContext) -> Channel: ...


class ChannelUnavailable(Exception):
    """A factory cannot build its channel in this process (e.g. no event bus)."""


def load_channels(ctx: ChannelFactoryContext) -> dict[str, Channel]:
    """Every channel registered in the `chatapi.channels` entry-point group, by name.

    A factory that raises ChannelUnavailable is skipped with a log line; a broken plugin
    (import error, wrong type) raises, so a misconfigured deployment fails at start-up rather
    than at its first delivery.
    """
    channels: dict[str, Channel] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in channels:
            # Two distributions claim one name: the first (sorted by name, then discovery
            # order) wins, and the clash is visible in the log.
            log.warning("channel %r registered twice; keeping the first", ep.name)
            continue
        factory: ChannelFactory = ep.load()
        try:
            channel = factory(ctx)
        except ChannelUnavailable as exc:
            log.info("channel %r unavailable here: %s", ep.name, exc)
            continue
        if not isinstance(channel, Channel):
            raise TypeError(f"entry point {ep.value!r} did not build a Channel")
        if channel.name != ep.name:
            raise TypeError(
                f"entry point {ep.name!r} built a channel named {channel.name!r}; they must match"
            )
        channels[ep.name] = channel
    return channels
