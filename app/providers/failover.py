"""One attempt of a batch of messages through a chain of providers, failing over.

The routing of a channel (`PUT /routing/{channel}`) is an ordered chain of the tenant's
providers, and a bulk chain for sends with at least `min_recipients` recipients on the
channel (`Route`). `send_through` gives every message to the first provider; what fails there
by the provider's fault (`ProviderOutcome.fail_over`) goes to the next one, within the same
attempt; each outcome's `served_by` names the provider that answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from app.channels.base import Outcome, OutcomeKind
from app.providers.base import ProviderAccount, ProviderMessage, ProviderOutcome, ProviderType

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# Provider API calls of one chain step in flight at once (a 10,000-recipient bulk send is ten
# 1,000-recipient Mailgun calls).
CALLS_IN_FLIGHT = 4


@dataclass(frozen=True, slots=True)
class Route:
    """A channel's routing for one tenant, its accounts opened."""

    providers: tuple[ProviderAccount, ...] = ()
    bulk_min_recipients: int | None = None
    bulk: tuple[ProviderAccount, ...] = ()

    def chain_for(self, recipients: int) -> tuple[ProviderAccount, ...]:
        """The chain for a send with `recipients` recipients on this channel."""
        bulk_min = self.bulk_min_recipients
        if self.bulk and bulk_min is not None and recipients >= bulk_min:
            return self.bulk
        return self.providers


class ProviderRoutes(Protocol):
    """Where a channel reads a tenant's routing (registered by the composition root)."""

    async def route(self, session: AsyncSession, client_id: str, channel: str) -> Route:
        """The tenant's route for `channel`, enabled accounts only, secrets opened; an empty
        Route when it has no provider for the channel."""
        ...


@dataclass(slots=True)
class _Pending:
    index: int
    tried: list[str] = field(default_factory=list)
    tried_types: list[str] = field(default_factory=list)
    last: ProviderOutcome | None = None


async def send_through(
    chain: Sequence[ProviderAccount],
    types: Mapping[str, ProviderType],
    messages: Sequence[ProviderMessage],
) -> list[ProviderOutcome]:
    """One outcome per message, in order: each message's answer from the first provider of the
    chain that did not fail over, or the last provider's failure, with every provider's
    error in `error`."""
    if not chain:
        failed = Outcome(OutcomeKind.FAILED, error="no provider is configured for this channel")
        return [ProviderOutcome(failed)] * len(messages)
    results: list[ProviderOutcome | None] = [None] * len(messages)
    pending = [_Pending(i) for i in range(len(messages))]
    for step, account in enumerate(chain):
        last_step = step == len(chain) - 1
        provider = types.get(account.type)
        if provider is None:
            missing = Outcome(
                OutcomeKind.RETRY,
                error=f"provider type {account.type!r} is not installed in this process",
            )
            answers = [ProviderOutcome(missing, fail_over=True)] * len(pending)
        else:
            answers = await _send_chunks(provider, account, [messages[p.index] for p in pending])
        still: list[_Pending] = []
        for p, answer in zip(pending, answers, strict=True):
            answer = replace(
                answer,
                outcome=replace(answer.outcome, served_by=account.name, provider_type=account.type),
            )
            if answer.fail_over and not answer.outcome.delivered and not last_step:
                p.tried.append(f"{account.name}: {answer.outcome.error}")
                p.tried_types.append(account.type)
                p.last = answer
                still.append(p)
                continue
            if p.tried:
                error = "; ".join([*p.tried, f"{account.name}: {answer.outcome.error}"])
                if answer.outcome.delivered:
                    error = "; ".join(p.tried)
                answer = replace(
                    answer,
                    outcome=replace(answer.outcome, error=error, failed_over=tuple(p.tried_types)),
                )
            results[p.index] = answer
        pending = still
        if not pending:
            break
    return [r for r in results if r is not None]


async def _send_chunks(
    provider: ProviderType, account: ProviderAccount, messages: list[ProviderMessage]
) -> list[ProviderOutcome]:
    size = max(1, provider.max_batch)
    chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
    limit = asyncio.Semaphore(CALLS_IN_FLIGHT)

    async def one(chunk: list[ProviderMessage]) -> list[ProviderOutcome]:
        async with limit:
            try:
                answers = await provider.send(account, chunk)
            except Exception as exc:  # a provider type's bug: retried, never lost
                error = f"{type(exc).__name__}: {exc}"
                return [
                    ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
                ] * len(chunk)
        if len(answers) != len(chunk):
            error = f"provider answered {len(answers)} outcomes for {len(chunk)} messages"
            return [ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)] * len(
                chunk
            )
        return answers

    out: list[ProviderOutcome] = []
    for answers in await asyncio.gather(*(one(c) for c in chunks)):
        out.extend(answers)
    return out
