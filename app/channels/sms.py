"""The SMS channel: a text message to a phone number, through the tenant's SMS providers.

Recipients: a user's delivery goes to the user's `phone` (E.164; a user without one is
`skipped`), a send's `{"phone": ...}` recipient is its own delivery, and a bare e-mail
address is skipped. Like e-mail, the tenant's routing of the `sms` channel (`PUT
/routing/sms`) is read once per batch: an ordered failover chain of providers and a bulk
chain for notifications with at least `min_recipients` SMS deliveries; `send_through`
(app/providers/failover.py) hands each message to the first provider, and what fails there
by the provider's fault goes to the next within the same attempt (`served_by` names the one
that answered). The `twilio` provider type (app/providers/builtin/twilio.py) speaks
Twilio's Messages API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    PhoneNumber,
    PlannedDelivery,
    Quota,
    Resolved,
    TenantLimits,
)
from app.channels.driver import ADDRESS_ONLY, BaseChannel
from app.channels.provider_chain import (
    Chain,
    RecipientCounts,
    SuppressedAddresses,
    chains_for_batch,
    send_by_chain,
)
from app.providers.base import ProviderAccount, ProviderType
from app.providers.failover import ProviderRoutes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

NO_PROVIDER = "no SMS provider is configured"
NO_PHONE = "the user has no phone number"
# Twilio's limit for one message's body (it is sent as up to 10 concatenated segments).
MAX_SMS_TEXT = 1_600


class SmsContent(BaseModel):
    """A text message: `text`, at most 1,600 characters (long texts are sent as several
    segments, each billed)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Your code is 123456"}]}
    )

    text: str = Field(min_length=1, max_length=MAX_SMS_TEXT)


@dataclass(frozen=True, slots=True)
class SmsTarget(DeliveryTarget):
    """An SMS delivery's number and the providers it goes through (`chain`)."""

    phone: str | None = None
    chain: tuple[ProviderAccount, ...] = ()


class SmsChannel(BaseChannel):
    """Sends each delivery through its chain of SMS providers, first to last."""

    name = "sms"
    content_model = SmsContent
    recipient_email = False  # addressed to the user's phone

    def __init__(
        self,
        *,
        provider_types: Mapping[str, ProviderType],
        routes: ProviderRoutes | None = None,
        counts: RecipientCounts | None = None,
        suppressed: SuppressedAddresses | None = None,
    ) -> None:
        # The process's types, built and closed by the runtime (not by this channel).
        self._types = dict(provider_types)
        self._routes = routes
        self._counts = counts
        self._suppressed = suppressed

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The content as stored."""
        return content.model_dump(mode="json")

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """A bare phone number is its own delivery; a user's goes to the user's phone,
        skipped when the user has none; a bare e-mail address is skipped. A number the tenant
        suppressed (the provider said it can never receive) is skipped with the reason: one
        query for the whole send."""
        phones = [
            str(r) if isinstance(r, PhoneNumber) else None if isinstance(r, str) else r.phone
            for r in recipients
        ]
        suppressed: Mapping[str, str] = {}
        present = [p for p in phones if p]
        if self._suppressed is not None and present:
            suppressed = await self._suppressed.skip_reasons(session, client_id, present)
        out: list[PlannedDelivery] = []
        for r, phone in zip(recipients, phones, strict=True):
            if isinstance(r, PhoneNumber):
                out.append(PlannedDelivery({"phone": str(r)}, skip_reason=suppressed.get(str(r))))
                continue
            if isinstance(r, str):
                out.append(PlannedDelivery({"email": r}, skip_reason=ADDRESS_ONLY))
                continue
            recipient: dict[str, Any] = {"user_id": r.id, "external_id": r.external_id}
            if r.phone:
                recipient["phone"] = r.phone
            skip = suppressed.get(phone) if phone else NO_PHONE
            out.append(PlannedDelivery(recipient, r.id, skip_reason=skip))
        return out

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """The tenant's SMS route, read once for the batch; each target's chain (the bulk
        one for a notification with enough SMS recipients)."""
        chains = await chains_for_batch(
            session, client_id, self.name, targets, self._routes, self._counts
        )
        if isinstance(chains, Outcome):
            return {t.delivery_id: chains for t in targets}
        return {
            t.delivery_id: SmsTarget(
                t.delivery_id,
                t.client_id,
                t.user_id,
                t.recipient,
                t.endpoint_id,
                phone=t.recipient.get("phone"),
                chain=chains[t.delivery_id],
            )
            for t in targets
        }

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

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """SMS per hour per client."""
        return Quota(limits.sms_per_hour, "hour", (target.client_id,), "qs")


def create(ctx: ChannelFactoryContext) -> SmsChannel:
    """Entry point `sms`: the process's SMS provider types (`chatapi.providers` entry
    points whose channel is `sms`) and the tenant routing service."""
    return SmsChannel(
        provider_types={n: p for n, p in ctx.provider_types.items() if p.channel == "sms"},
        routes=cast("ProviderRoutes | None", ctx.services.get(ProviderRoutes)),
        counts=cast("RecipientCounts | None", ctx.services.get(RecipientCounts)),
        suppressed=cast("SuppressedAddresses | None", ctx.services.get(SuppressedAddresses)),
    )


def _plan(target: DeliveryTarget, content: dict[str, Any]) -> tuple[Chain, str] | Outcome:
    """The delivery's chain and number, or the permanent failure of one that cannot be sent
    at all."""
    if not isinstance(target, SmsTarget) or not target.chain:
        return Outcome(OutcomeKind.FAILED, error=NO_PROVIDER)
    if not target.phone:
        return Outcome(OutcomeKind.FAILED, error="SMS delivery needs a phone number")
    if not content.get("text"):
        return Outcome(OutcomeKind.FAILED, error="SMS content needs text")
    return target.chain, target.phone
