"""What the channels that send through a tenant's provider chain share (`email`, `sms`).

`chains_for_batch` reads the channel's route once per batch: an ordered failover chain, and
a bulk chain for notifications with at least `min_recipients` deliveries on the channel
(counted once per batch, and only when the route has a bulk chain: one grouped count on the
deliveries' (notification, channel) index). `send_by_chain` makes one attempt per delivery,
handing the deliveries that share a chain to `send_through` together, so a provider that
batches (Mailgun, SendGrid: 1,000 recipients per call) sees them in one call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from app.channels.base import ChannelContext, DeliveryTarget, Outcome, OutcomeKind
from app.core.clock import monotonic
from app.core.crypto import SecretBoxError
from app.providers.base import ProviderAccount, ProviderMessage, ProviderType
from app.providers.failover import ProviderRoutes, Route, send_through

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

Chain = tuple[ProviderAccount, ...]
#: A delivery's chain and the address it goes to, or why it cannot be sent at all.
Plan = Callable[[DeliveryTarget, dict[str, Any]], "tuple[Chain, str] | Outcome"]


class RecipientCounts(Protocol):
    """How many deliveries a batch's notifications have on a channel (registered by the
    composition root; the bulk chain's threshold)."""

    async def per_delivery(
        self, session: AsyncSession, client_id: str, channel: str, delivery_ids: Sequence[str]
    ) -> Mapping[str, int]:
        """For each delivery id, the number of `channel` deliveries of its notification."""
        ...


class SuppressedAddresses(Protocol):
    """A tenant's suppressed addresses (hard bounces, complaints, undeliverable numbers;
    registered by the composition root): deliveries to them are skipped when a send is
    expanded."""

    async def skip_reasons(
        self, session: AsyncSession, client_id: str, addresses: Sequence[str]
    ) -> Mapping[str, str]:
        """Of `addresses`, the suppressed ones (lower-cased) and each one's skip reason
        (`suppressed: hard bounce`)."""
        ...


async def chains_for_batch(
    session: AsyncSession,
    client_id: str,
    channel: str,
    targets: Sequence[DeliveryTarget],
    routes: ProviderRoutes | None,
    counts: RecipientCounts | None,
) -> Mapping[str, Chain] | Outcome:
    """Each target's chain (the bulk one for a notification with enough recipients on the
    channel), or the permanent failure of the whole batch when the route cannot be opened."""
    route = Route()
    if routes is not None:
        try:
            route = await routes.route(session, client_id, channel)
        except SecretBoxError as exc:
            # Sealed under another SECRET_KEY: retrying cannot help until it is fixed.
            return Outcome(OutcomeKind.FAILED, error=str(exc))
    counted: Mapping[str, int] = {}
    if route.bulk and route.bulk_min_recipients is not None and counts is not None:
        counted = await counts.per_delivery(
            session, client_id, channel, [t.delivery_id for t in targets]
        )
    return {t.delivery_id: route.chain_for(counted.get(t.delivery_id, 1)) for t in targets}


async def send_by_chain(
    types: Mapping[str, ProviderType],
    targets: Sequence[DeliveryTarget],
    contents: Sequence[dict[str, Any]],
    ctxs: Sequence[ChannelContext],
    plan: Plan,
) -> list[Outcome]:
    """One attempt per delivery; the deliveries sharing a chain go through it together."""
    outcomes: list[Outcome | None] = [None] * len(targets)
    groups: dict[tuple[str, ...], list[tuple[int, ProviderMessage]]] = defaultdict(list)
    chains: dict[tuple[str, ...], Chain] = {}
    for i, (target, content, ctx) in enumerate(zip(targets, contents, ctxs, strict=True)):
        planned = plan(target, content)
        if isinstance(planned, Outcome):
            outcomes[i] = planned
            continue
        chain, address = planned
        key = tuple(a.id for a in chain)
        chains[key] = chain
        groups[key].append((i, _message(target, address, content, ctx)))
    for key, items in groups.items():
        started = monotonic()
        answers = await send_through(chains[key], types, [m for _, m in items])
        took = (monotonic() - started) * 1000
        for (i, _), answer in zip(items, answers, strict=True):
            outcomes[i] = replace(answer.outcome, duration_ms=took)
    return [o for o in outcomes if o is not None]


def _message(
    target: DeliveryTarget, address: str, content: dict[str, Any], ctx: ChannelContext
) -> ProviderMessage:
    return ProviderMessage(
        delivery_id=target.delivery_id,
        notification_id=ctx.notification_id,
        client_id=target.client_id,
        address=address,
        content=content,
        created_at=ctx.created_at,
        attempt=ctx.attempt,
        user_id=target.user_id,
        metadata=ctx.metadata,
    )
