"""The e-mail channel: each delivery goes through the tenant's e-mail providers.

The tenant's routing of the `email` channel (`PUT /routing/email`, app/providers) is read
once per batch (`load_targets`): an ordered failover chain of providers, and a bulk chain for
notifications with at least `min_recipients` e-mail deliveries. `send_batch` groups the
batch's messages by chain and hands each group to `send_through` (app/providers/failover.py):
a message the first provider fails by its own fault (refused, timed out, 4xx, a session that
cannot be opened) goes to the next within the same attempt; `Outcome.served_by` names the
provider that answered. The `smtp` provider type (app/providers/builtin/smtp.py) speaks SMTP.

Reading the route and sending by chain are shared with the sms channel
(app/channels/provider_chain.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    EmailConfig,
    Outcome,
    OutcomeKind,
    PhoneNumber,
    PlannedDelivery,
    Quota,
    Resolved,
    SmtpServer,
    TenantLimits,
)
from app.channels.content import EmailContent
from app.channels.driver import PHONE_ONLY, BaseChannel
from app.channels.provider_chain import (
    Chain,
    RecipientCounts,
    SuppressedAddresses,
    chains_for_batch,
    send_by_chain,
)
from app.channels.smtp_message import MessageCache, build_message  # noqa: F401 (re-exported)
from app.channels.smtp_pool import MAX_CONNECTIONS_PER_SERVER
from app.channels.smtp_target import SmtpTargetPolicy
from app.providers.base import ProviderAccount, ProviderType
from app.providers.builtin.smtp import (
    POOL_BUSY_RETRY_SECONDS,  # noqa: F401 (re-exported)
    SmtpProviderType,
    SmtpSettings,
)
from app.providers.failover import ProviderRoutes

if TYPE_CHECKING:
    import ssl

    from sqlalchemy.ext.asyncio import AsyncSession

NO_PROVIDER = "no e-mail provider is configured"


@dataclass(frozen=True, slots=True)
class EmailTarget(DeliveryTarget):
    """An e-mail delivery's address and the providers it goes through (`chain`).

    `config` is the older shape, an explicit primary/fallback pair of SMTP servers (the
    `/email-config/test` path and the channel's tests): it stands for a chain of two `smtp`
    accounts named `primary` and `fallback`.
    """

    email: str | None = None
    config: EmailConfig | None = None
    chain: tuple[ProviderAccount, ...] = ()


def smtp_account(client_id: str, name: str, server: SmtpServer) -> ProviderAccount:
    """An `smtp` account for an explicit server (not stored; `name` is what `served_by`
    shows)."""
    settings = SmtpSettings.model_validate(
        {
            "host": server.host,
            "port": server.port,
            "username": server.username,
            "password": server.password,
            "security": server.security,
            "from_email": server.from_email,
            "from_name": server.from_name,
        }
    )
    return ProviderAccount(f"{name}:{client_id}", client_id, name, "smtp", "email", settings)


def config_chain(client_id: str, config: EmailConfig) -> tuple[ProviderAccount, ...]:
    """An explicit primary/fallback pair as a chain of two `smtp` accounts."""
    chain = [smtp_account(client_id, "primary", config.primary)]
    if config.fallback is not None:
        chain.append(smtp_account(client_id, "fallback", config.fallback))
    return tuple(chain)


class EmailChannel(BaseChannel):
    """Sends each delivery through its chain of e-mail providers, first to last."""

    name = "email"
    content_model = EmailContent
    # One task message's e-mail deliveries go through one `send_batch`: a bulk route's
    # 1,000 are one Mailgun call (SMTP sends them over its pooled sessions either way).
    batch_size = 1000

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        targets: SmtpTargetPolicy | None = None,
        max_connections: int = MAX_CONNECTIONS_PER_SERVER,
        pool_wait_seconds: float | None = None,
        provider_types: Mapping[str, ProviderType] | None = None,
        routes: ProviderRoutes | None = None,
        counts: RecipientCounts | None = None,
        suppressed: SuppressedAddresses | None = None,
    ) -> None:
        self._routes = routes
        self._counts = counts
        self._suppressed = suppressed
        types = dict(provider_types or {})
        # The process's provider types are built (and closed) by the runtime; a channel made
        # without them (tests, /email-config/test) builds and closes its own `smtp` type.
        self._own: ProviderType | None = None
        if "smtp" not in types:
            self._own = types["smtp"] = SmtpProviderType(
                timeout=timeout,
                targets=targets,
                tls_context=tls_context,
                max_connections=max_connections,
                pool_wait_seconds=pool_wait_seconds,
            )
        self._types: Mapping[str, ProviderType] = types

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """One attempt through the target's chain."""
        [outcome] = await self.send_batch([target], [content], [ctx])
        return outcome

    async def send_batch(
        self,
        targets: Sequence[DeliveryTarget],
        contents: Sequence[dict[str, Any]],
        ctxs: Sequence[ChannelContext],
    ) -> list[Outcome]:
        """One attempt per delivery; the deliveries sharing a chain go through it together."""
        return await send_by_chain(self._types, targets, contents, ctxs, _plan)

    async def aclose(self) -> None:
        """Close the pooled connections of the `smtp` type this channel built itself."""
        if self._own is not None:
            await self._own.aclose()

    # ---- driver methods (app/channels/driver.py)

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The e-mail as stored: `from` under its JSON name, unset parts left out."""
        return content.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """A bare address is its own delivery; a user's goes to the user's address, skipped
        when the user has none; a bare phone number is skipped. An address the tenant
        suppressed (it hard-bounced, or its owner complained) is skipped with the reason: one
        query for the whole send."""
        # A PhoneNumber is a str: tell it apart before taking bare strings as addresses.
        addresses = [
            None if isinstance(r, PhoneNumber) else r if isinstance(r, str) else r.email
            for r in recipients
        ]
        suppressed: Mapping[str, str] = {}
        if self._suppressed is not None:
            present = [a for a in addresses if a]
            if present:
                suppressed = await self._suppressed.skip_reasons(session, client_id, present)
        out: list[PlannedDelivery] = []
        for r, address in zip(recipients, addresses, strict=True):
            if isinstance(r, PhoneNumber):
                out.append(PlannedDelivery({"phone": r}, skip_reason=PHONE_ONLY))
                continue
            skip = suppressed.get(address.lower()) if address else None
            if isinstance(r, str):
                out.append(PlannedDelivery({"email": r}, skip_reason=skip))
                continue
            recipient: dict[str, Any] = {"user_id": r.id, "external_id": r.external_id}
            if r.email:
                recipient["email"] = r.email
            else:
                skip = "the user has no e-mail address"
            out.append(PlannedDelivery(recipient, r.id, skip_reason=skip))
        return out

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """The tenant's e-mail route, read once for the batch; each target's chain (the bulk
        one for a notification with enough e-mail recipients)."""
        chains = await chains_for_batch(
            session, client_id, self.name, targets, self._routes, self._counts
        )
        if isinstance(chains, Outcome):
            return {t.delivery_id: chains for t in targets}
        return {
            t.delivery_id: EmailTarget(
                t.delivery_id,
                t.client_id,
                t.user_id,
                t.recipient,
                t.endpoint_id,
                email=t.recipient.get("email"),
                chain=chains[t.delivery_id],
            )
            for t in targets
        }

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """E-mails per hour per client."""
        return Quota(limits.emails_per_hour, "hour", (target.client_id,), "qe")


def create(ctx: ChannelFactoryContext) -> EmailChannel:
    """Entry point `email`: the process's provider types and the tenant routing service."""
    targets = SmtpTargetPolicy(
        allow_private=ctx.smtp_allow_private_targets, allowed_hosts=ctx.smtp_allowed_hosts
    )
    return EmailChannel(
        timeout=ctx.smtp_timeout_seconds,
        targets=targets,
        provider_types=ctx.provider_types,
        routes=cast("ProviderRoutes | None", ctx.services.get(ProviderRoutes)),
        counts=cast("RecipientCounts | None", ctx.services.get(RecipientCounts)),
        suppressed=cast("SuppressedAddresses | None", ctx.services.get(SuppressedAddresses)),
    )


def _chain(target: DeliveryTarget) -> tuple[ProviderAccount, ...]:
    if not isinstance(target, EmailTarget):
        return ()
    if not target.chain and target.config is not None:
        return config_chain(target.client_id, target.config)
    return target.chain


def _plan(target: DeliveryTarget, content: dict[str, Any]) -> tuple[Chain, str] | Outcome:
    """The delivery's chain and address, or the permanent failure of one that cannot be
    sent at all."""
    chain = _chain(target)
    if not chain:
        return Outcome(OutcomeKind.FAILED, error=NO_PROVIDER)
    assert isinstance(target, EmailTarget)
    if not target.email:
        return Outcome(OutcomeKind.FAILED, error="e-mail delivery needs an address")
    if content.get("text") is None and content.get("html") is None:
        return Outcome(OutcomeKind.FAILED, error="e-mail content needs text or html")
    return chain, target.email
