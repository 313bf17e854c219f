"""The push channel: a notification to every push subscription of its user, through the
tenant's push providers (`webpush` for browsers' Web Push subscriptions, `fcm` for Firebase
Cloud Messaging tokens).

One delivery per user. Its attempt sends to each of the user's subscriptions through the
first provider of the tenant's push route (`PUT /routing/push`) that serves that kind of
subscription, failing over along the route (app/providers/failover.py). The delivery is
delivered when at least one subscription's push service accepted it; a subscription the
push service says is gone (404/410) is removed, and when every one was gone the delivery
fails ("no live push subscription"). Like every channel it never touches the database
itself: subscriptions are read, and gone ones removed, through the `PushSubscriptions`
service the composition root registers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    PlannedDelivery,
    Resolved,
    address_recipient,
)
from app.channels.driver import BaseChannel, address_only
from app.channels.push_content import PushContent
from app.core.clock import monotonic
from app.core.crypto import SecretBoxError
from app.providers.base import (
    ProviderAccount,
    ProviderMessage,
    ProviderOutcome,
    ProviderType,
)
from app.providers.failover import ProviderRoutes, Route, send_through

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("chatapi.channels.push")

NO_SUBSCRIPTION = "the user has no push subscription"
ALL_GONE = "no live push subscription: the push service answered 404/410 for every one"


@dataclass(frozen=True, slots=True)
class PushDevice:
    """One subscription as the channel sends to it (auth secret opened): a Web Push
    subscription (`endpoint` URL, `p256dh`, `auth`) or an FCM token (`endpoint`)."""

    id: str
    user_id: str
    kind: str  # webpush | fcm
    endpoint: str
    p256dh: str | None = None
    auth: str | None = None


class PushSubscriptions(Protocol):
    """Where the channel reads users' subscriptions and removes gone ones (registered by
    the composition root)."""

    async def users_with_subscriptions(
        self, session: AsyncSession, client_id: str, user_ids: Sequence[str]
    ) -> set[str]:
        """Which of `user_ids` have at least one subscription (one query)."""
        ...

    async def for_delivery(
        self, session: AsyncSession, client_id: str, user_ids: Sequence[str]
    ) -> Mapping[str, Sequence[PushDevice]]:
        """The subscriptions of `user_ids`, by user, secrets opened (SecretBoxError when
        one cannot be opened)."""
        ...

    async def remove_gone(self, client_id: str, subscription_ids: Sequence[str]) -> int:
        """Remove subscriptions the push service said are gone (in a session of its own:
        the attempt holds none); how many."""
        ...


@dataclass(frozen=True, slots=True)
class PushTarget(DeliveryTarget):
    """A push delivery's subscriptions and the tenant's push route."""

    devices: tuple[PushDevice, ...] = ()
    route: Route | None = None


def subscription_kind(provider: ProviderType) -> str:
    """The kind of subscription a push provider type serves: its `subscription_kind`
    attribute, else its type name (`webpush`, `fcm`)."""
    return str(getattr(provider, "subscription_kind", provider.type))


class PushChannel(BaseChannel):
    """Sends each delivery to its user's subscriptions through the tenant's push route."""

    name = "push"
    content_model = PushContent
    recipient_email = False  # a push delivery is addressed to the user's devices

    def __init__(
        self,
        *,
        types: Mapping[str, ProviderType],
        subscriptions: PushSubscriptions | None = None,
        routes: ProviderRoutes | None = None,
    ) -> None:
        self._types = dict(types)
        self._subscriptions = subscriptions
        self._routes = routes

    # ---- driver methods (app/channels/driver.py)

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The content as stored, unset parts left out."""
        return content.model_dump(mode="json", exclude_none=True)

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """One delivery per user; skipped when the user has no subscription (one query for
        the whole send). A bare e-mail address or phone number has no devices: skipped."""
        users = [r.id for r in recipients if not isinstance(r, str)]
        subscribed: set[str] = set()
        if users and self._subscriptions is not None:
            subscribed = await self._subscriptions.users_with_subscriptions(
                session, client_id, users
            )
        out: list[PlannedDelivery] = []
        for r in recipients:
            if isinstance(r, str):
                out.append(PlannedDelivery(address_recipient(r), skip_reason=address_only(r)))
                continue
            skip = None if r.id in subscribed else NO_SUBSCRIPTION
            recipient = {"user_id": r.id, "external_id": r.external_id}
            out.append(PlannedDelivery(recipient, r.id, skip_reason=skip))
        return out

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """The batch's users' subscriptions (one read) and the tenant's push route (read
        once for the batch)."""
        try:
            route = Route()
            if self._routes is not None:
                route = await self._routes.route(session, client_id, self.name)
            devices: Mapping[str, Sequence[PushDevice]] = {}
            users = sorted({t.user_id for t in targets if t.user_id})
            if users and self._subscriptions is not None:
                devices = await self._subscriptions.for_delivery(session, client_id, users)
        except SecretBoxError as exc:
            # Sealed under another SECRET_KEY: retrying cannot help until it is fixed.
            failed = Outcome(OutcomeKind.FAILED, error=str(exc))
            return {t.delivery_id: failed for t in targets}
        out: dict[str, DeliveryTarget | Outcome] = {}
        for t in targets:
            mine = tuple(devices.get(t.user_id, ())) if t.user_id else ()
            if not mine:
                # Removed since the send (unsubscribed, or gone at an earlier attempt).
                out[t.delivery_id] = Outcome(OutcomeKind.FAILED, error=NO_SUBSCRIPTION)
                continue
            out[t.delivery_id] = PushTarget(
                t.delivery_id, t.client_id, t.user_id, t.recipient, t.endpoint_id, mine, route
            )
        return out

    # ---- sending

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """One attempt (a batch of one)."""
        [outcome] = await self.send_batch([target], [content], [ctx])
        return outcome

    async def send_batch(
        self,
        targets: Sequence[DeliveryTarget],
        contents: Sequence[dict[str, Any]],
        ctxs: Sequence[ChannelContext],
    ) -> list[Outcome]:
        """Every subscription of every delivery, grouped by the provider chain that serves
        it (one `send_through` per chain); one outcome per delivery."""
        started = monotonic()
        outcomes: list[Outcome | None] = [None] * len(targets)
        answers: list[list[tuple[PushDevice, ProviderOutcome]]] = [[] for _ in targets]
        # By chain (its accounts' ids: settings are not hashable).
        chains: dict[tuple[str, ...], tuple[ProviderAccount, ...]] = {}
        groups: dict[tuple[str, ...], list[tuple[int, PushDevice, ProviderMessage]]] = {}
        # A route's bulk chain is for sends with many recipients on the channel: counted
        # per notification among the batch's deliveries (its deliveries are batched together).
        per_send = Counter(ctx.notification_id for ctx in ctxs)
        for i, (target, content, ctx) in enumerate(zip(targets, contents, ctxs, strict=True)):
            if not isinstance(target, PushTarget) or target.route is None or not target.devices:
                outcomes[i] = Outcome(OutcomeKind.FAILED, error=NO_SUBSCRIPTION)
                continue
            chain = target.route.chain_for(per_send[ctx.notification_id])
            for device in target.devices:
                accounts = tuple(a for a in chain if self._serves(a, device.kind))
                key = tuple(a.id for a in accounts) or (f"none:{device.kind}",)
                chains[key] = accounts
                groups.setdefault(key, []).append(
                    (i, device, _message(target, device, content, ctx))
                )

        async def through(accounts: tuple[ProviderAccount, ...], items: list[Any]) -> None:
            if accounts:
                sent = await send_through(accounts, self._types, [m for _, _, m in items])
            else:
                kind = items[0][1].kind
                missing = Outcome(
                    OutcomeKind.FAILED,
                    error=f"no {kind} provider is in the tenant's push route (PUT /routing/push)",
                )
                sent = [ProviderOutcome(missing)] * len(items)
            for (i, device, _), answer in zip(items, sent, strict=True):
                answers[i].append((device, answer))

        await asyncio.gather(*(through(chains[key], items) for key, items in groups.items()))
        gone: list[str] = []
        for i, answered in enumerate(answers):
            if outcomes[i] is None:
                outcomes[i] = _summary(answered)
                gone.extend(device.id for device, answer in answered if answer.gone)
        if gone and self._subscriptions is not None:
            client_id = targets[0].client_id
            try:
                await self._subscriptions.remove_gone(client_id, gone)
            except Exception:  # the outcomes stand; the next attempt finds them gone again
                log.exception("removing %d gone push subscriptions failed", len(gone))
        elapsed = (monotonic() - started) * 1000
        return [replace(o, duration_ms=elapsed) for o in outcomes if o is not None]

    def _serves(self, account: ProviderAccount, kind: str) -> bool:
        provider = self._types.get(account.type)
        if provider is None:  # not installed here: send_through answers for it (retry)
            return account.type == kind
        return subscription_kind(provider) == kind

    async def aclose(self) -> None:
        """Release the provider types' pooled connections."""
        for provider in self._types.values():
            await provider.aclose()


def _message(
    target: PushTarget, device: PushDevice, content: dict[str, Any], ctx: ChannelContext
) -> ProviderMessage:
    subscription: dict[str, Any] = {"id": device.id, "kind": device.kind}
    if device.kind == "webpush":
        subscription |= {
            "endpoint": device.endpoint,
            "keys": {"p256dh": device.p256dh, "auth": device.auth},
        }
    return ProviderMessage(
        delivery_id=target.delivery_id,
        notification_id=ctx.notification_id,
        client_id=target.client_id,
        address=device.endpoint,
        content=content,
        created_at=ctx.created_at,
        attempt=ctx.attempt,
        user_id=target.user_id,
        subscription=subscription,
        metadata=ctx.metadata,
    )


def _summary(answered: list[tuple[PushDevice, ProviderOutcome]]) -> Outcome:
    """One delivery's outcome from its subscriptions' answers."""
    delivered = [a.outcome for _, a in answered if a.outcome.delivered]
    gone = sum(1 for _, a in answered if a.gone)
    if delivered:
        first = delivered[0]
        # One subscription: the provider's own reply (FCM's message name, the push
        # service's message URL); several: how many took it.
        reply = first.reply
        if len(answered) > 1:
            reply = f"{len(delivered)} of {len(answered)} subscriptions accepted"
            if gone:
                reply += f"; {gone} gone (removed)"
        return Outcome(
            OutcomeKind.DELIVERED,
            response_code=first.response_code,
            reply=reply,
            served_by=first.served_by,
        )
    if gone == len(answered):
        return Outcome(
            OutcomeKind.FAILED,
            response_code=answered[0][1].outcome.response_code,
            error=ALL_GONE,
            served_by=answered[0][1].outcome.served_by,
        )
    failures = [a.outcome for _, a in answered if not a.gone]
    kinds = {o.kind for o in failures}
    kind = OutcomeKind.FAILED
    if OutcomeKind.RETRY in kinds:
        kind = OutcomeKind.RETRY
    elif kinds == {OutcomeKind.DEFER}:
        kind = OutcomeKind.DEFER
    hints = [o.retry_after for o in failures if o.retry_after is not None]
    errors = list(dict.fromkeys(o.error or o.kind.value for o in failures))
    return Outcome(
        kind,
        retry_after=max(hints) if hints and kind is not OutcomeKind.FAILED else None,
        response_code=failures[0].response_code,
        reply=failures[0].reply,
        error="; ".join(errors),
        served_by=failures[0].served_by,
    )


def create(ctx: ChannelFactoryContext) -> PushChannel:
    """Entry point `push`: the process's push provider types (`chatapi.providers` entry
    points whose channel is `push`), its subscriptions and routes services."""
    types = {
        name: provider
        for name, provider in ctx.provider_types.items()
        if provider.channel == "push"
    }
    return PushChannel(
        types=types,
        subscriptions=cast("PushSubscriptions | None", ctx.services.get(PushSubscriptions)),
        routes=cast("ProviderRoutes | None", ctx.services.get(ProviderRoutes)),
    )
