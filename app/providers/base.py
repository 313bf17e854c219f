"""The provider interface: one configured account of a delivery service behind a channel.

A channel (`email`, `sms`, `push`) delivers through the tenant's providers of that channel,
in the order its routing names them (app/providers/failover.py); a provider *type* is the code
that talks to one service (SMTP, Mailgun, SendGrid, Twilio, Web Push, FCM). Types are found
through the `chatapi.providers` entry-point group, built-ins included, so a pip-installed
package adds one without touching this code base (docs/providers.md).

Like a channel, a provider type never touches the database: the channel hands it opened
accounts (`ProviderAccount`) and messages, and it answers one `ProviderOutcome` per message.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, SecretStr

from app.channels.base import Outcome

if TYPE_CHECKING:
    from app.core.clock import Clock
    from app.core.config import Settings

log = logging.getLogger("chatapi.providers")

ENTRY_POINT_GROUP = "chatapi.providers"

#: What a provider's delivery event says happened (statuses after `delivered`, which means
#: accepted by the provider).
EventKind = Literal["delivered", "bounced", "complained", "failed"]


class ProviderSettings(BaseModel):
    """A provider type's settings. Fields typed `SecretStr` are secrets: sealed at rest with
    SECRET_KEY, never returned by the API (only their names, under `secret_fields`)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def secret_field_names(cls) -> tuple[str, ...]:
        """The names of the fields that hold secrets."""
        return tuple(
            name
            for name, f in cls.model_fields.items()
            if f.annotation is SecretStr or f.annotation == SecretStr | None
        )


class HttpProviderSettings(ProviderSettings):
    """An HTTP API provider's settings: its `base_url` (default: the service's documented API
    host) is held to the webhook address policy (WEBHOOK_ALLOW_PRIVATE_TARGETS)."""

    base_url: str


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """One configured provider of a tenant, secrets opened (for the attempt only)."""

    id: str
    client_id: str
    name: str
    type: str
    channel: str
    settings: ProviderSettings
    #: The tenant's slug, filled in for types that set `needs_client_slug` (their delivery
    #: events come back to /provider-events/{client_slug}/{name}, a URL they send along).
    client_slug: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderMessage:
    """One delivery as a provider sends it.

    `address` is what the channel delivers to: an e-mail address (`email`), an E.164 phone
    number (`sms`), a push subscription's endpoint or an FCM token (`push`, with the whole
    subscription in `subscription`). `content` is the channel's stored content object.
    `delivery_id` travels with the message (Message-ID, custom variables, callback URL) so the
    provider's delivery events find their delivery.
    """

    delivery_id: str
    notification_id: str
    client_id: str
    address: str
    content: Mapping[str, Any]
    created_at: datetime
    attempt: int = 1
    user_id: str | None = None
    subscription: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderOutcome:
    """How one message went at one provider.

    `fail_over`: the failure is the provider's (a 5xx, a timeout, a refused connection, an
    authentication or configuration error), so the next provider in the chain takes the
    message within the same attempt; a failure about the message or recipient (a 4xx about the
    address, an invalid number) does not fail over. `gone`: the push service says the
    subscription no longer exists (404/410); the channel removes it.
    """

    outcome: Outcome
    fail_over: bool = False
    provider_message_id: str | None = None
    gone: bool = False


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A provider's delivery-event request as it arrived (POST /provider-events/...).

    `url` is the full URL the provider called (Twilio signs it); `now` is the service clock's
    time, for refusing stale timestamps.
    """

    url: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    now: datetime

    def form(self) -> dict[str, str]:
        """The body as an `application/x-www-form-urlencoded` form (last value wins)."""
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One delivery event a provider reported, verified.

    `event_id` deduplicates (the provider's own id, or a digest of the event when it has none);
    `delivery_id` is the delivery the message carried; `permanent` marks a hard bounce (the
    address is suppressed, as it is for a complaint). `nonce`: a value the signature covers
    that must never verify twice (Mailgun's token): the events route refuses a request whose
    nonce it has seen, unless the event itself was already stored (a retry).
    """

    event_id: str
    kind: EventKind
    delivery_id: str | None
    address: str | None = None
    permanent: bool = False
    occurred_at: datetime | None = None
    detail: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    nonce: str | None = None


class SignatureRefused(Exception):
    """A provider event without a valid signature (or with a stale one): 401, nothing stored."""


class ProviderCheckFailed(Exception):
    """`POST /providers/{id}/test` could not reach or use the account; the message says why."""


@runtime_checkable
class ProviderType(Protocol):
    """The code that talks to one delivery service; built once per process by its factory."""

    #: The entry point's name, stored on each account (`"mailgun"`).
    type: str
    #: The channel it delivers for: `email`, `sms` or `push`.
    channel: str
    settings_model: builtins.type[ProviderSettings]
    #: Messages one `send` call may carry (Mailgun: 1,000 recipients per API call).
    max_batch: int

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """Send every message (at most `max_batch`); one outcome per message, in order. Never
        raises for the service's failures (those are outcomes), only for bugs."""
        ...

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """`POST /providers/{id}/test`: prove the account works (send a test message to `to`
        where the channel has addresses, else verify the credentials); a short description of
        what was done, or ProviderCheckFailed."""
        ...

    def verify_events(
        self, account: ProviderAccount, request: SignedRequest
    ) -> list[ProviderEvent]:
        """The verified events of a delivery-event request; SignatureRefused when it is not
        signed by this account (or stale). A type without events raises SignatureRefused."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections (at shutdown)."""
        ...


class BaseProviderType:
    """Defaults for a provider type: no events, nothing pooled."""

    # Set by each subclass (class attributes); plain annotations so a subclass instance
    # satisfies the ProviderType protocol's members.
    type: str
    channel: str
    settings_model: builtins.type[ProviderSettings]
    max_batch: int = 1

    def verify_events(
        self, account: ProviderAccount, request: SignedRequest
    ) -> list[ProviderEvent]:
        """This type reports no delivery events."""
        raise SignatureRefused(f"provider type {self.type!r} has no delivery events")

    async def aclose(self) -> None:
        """Nothing pooled."""


@dataclass(slots=True)
class ProviderFactoryContext:
    """What a provider factory may use: the process's settings and clock."""

    settings: Settings | None = None
    clock: Clock | None = None
    #: Whether HTTP providers may reach private addresses (WEBHOOK_ALLOW_PRIVATE_TARGETS).
    allow_private_targets: bool = False
    http_timeout_seconds: float = 15.0

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Clock | None = None
    ) -> ProviderFactoryContext:
        """The context for a process running with `settings`."""
        return cls(
            settings=settings,
            clock=clock,
            allow_private_targets=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
            http_timeout_seconds=settings.WEBHOOK_TIMEOUT_SECONDS,
        )


class ProviderFactory(Protocol):
    """What a `chatapi.providers` entry point names: `create(ctx) -> ProviderType`."""

    def __call__(self, ctx: ProviderFactoryContext) -> ProviderType: ...


def load_provider_types(ctx: ProviderFactoryContext) -> dict[str, ProviderType]:
    """Every provider type registered in the `chatapi.providers` entry-point group, by name;
    a broken plug-in raises, so a misconfigured deployment fails at start-up."""
    types: dict[str, ProviderType] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in types:
            log.warning("provider type %r registered twice; keeping the first", ep.name)
            continue
        factory: ProviderFactory = ep.load()
        provider = factory(ctx)
        if not isinstance(provider, ProviderType):
            raise TypeError(f"entry point {ep.value!r} did not build a ProviderType")
        if provider.type != ep.name:
            raise TypeError(
                f"entry point {ep.name!r} built provider type {provider.type!r}; they must match"
            )
        types[ep.name] = provider
    return types
