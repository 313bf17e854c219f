"""Channel quotas in the worker (API.md §8): each channel names its quota for a delivery
(`Channel.quota`: e-mails per hour per client, webhooks per second per endpoint, a
plug-in's own).

A claimed delivery over its channel's quota is *deferred*, not failed: the engine gives it
back unspent (`deferral_repository.give_back_many`) — `pending` (never attempted) or
`retrying`, due at the quota window's reset, no attempt row — so the sweep rings it again
when the window opens and it is sent then. Quotas are counted in the shared `limits`
storage (app/ratelimit/policies.py), so every worker process draws on one budget.

Counting is set-based: a batch sent together counts in one storage round trip
(`over_quota_many`), and deliveries sent one by one that reach their quota in the same
turn of the event loop (a batch's concurrent sends start together) are counted together
too (`QuotaCounts`), each still counted just before its own send.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from functools import partial

from app.channels.base import Channel, DeliveryTarget, Outcome, OutcomeKind
from app.ratelimit.channel_quotas import hit_channel_many
from app.ratelimit.windows import WindowStats
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")

_Pending = tuple[Channel, DeliveryTarget, float, "asyncio.Future[Outcome | None]"]


async def over_quota(
    rt: Runtime, channel: Channel, target: DeliveryTarget, now: float
) -> Outcome | None:
    """Count the delivery against its channel's quota; over it, the DEFER that puts it back
    until the window resets (`now`: Unix seconds), else None (send it)."""
    return await _counts(rt).over_quota(channel, target, now)


async def over_quota_many(
    rt: Runtime, channel: Channel, targets: Sequence[DeliveryTarget], now: float
) -> list[Outcome | None]:
    """`over_quota` for a batch of one client's deliveries through `channel`, in one
    storage round trip; each one's DEFER or None, in order."""
    if not targets:
        return []
    try:
        verdicts = await hit_channel_many(
            rt.limits, targets[0].client_id, [partial(channel.quota, t) for t in targets]
        )
    except Exception:
        # The quota's storage is down: sending beats holding every delivery back.
        log.exception("channel quota unavailable; sending anyway")
        return [None] * len(targets)
    return [_deferral(channel, stats, now) for stats in verdicts]


def _deferral(channel: Channel, stats: WindowStats | None, now: float) -> Outcome | None:
    if stats is None or stats.allowed:
        return None
    return Outcome(
        OutcomeKind.DEFER,
        retry_after=max(stats.reset_at - now, 0.0),
        error=f"over the {channel.name} quota until its window resets",
    )


class QuotaCounts:
    """Quota hits of deliveries in flight, gathered for one turn of the event loop and
    counted per (client, channel) with `over_quota_many`: one round trip for the many
    concurrent sends of a batch instead of one each."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._pending: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def over_quota(
        self, channel: Channel, target: DeliveryTarget, now: float
    ) -> Outcome | None:
        """`over_quota`, counted with whatever else asks in this turn of the loop."""
        loop = asyncio.get_running_loop()
        verdict: asyncio.Future[Outcome | None] = loop.create_future()
        self._pending.append((channel, target, now, verdict))
        if len(self._pending) == 1:
            # After the deliveries started in this turn have asked too.
            loop.call_soon(self._flush)
        return await verdict

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._count(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count(self, batch: list[_Pending]) -> None:
        groups: dict[tuple[str, str], list[_Pending]] = defaultdict(list)
        for entry in batch:
            groups[(entry[1].client_id, entry[0].name)].append(entry)
        for entries in groups.values():
            try:
                verdicts = await over_quota_many(
                    self._rt, entries[0][0], [e[1] for e in entries], entries[0][2]
                )
            except BaseException:  # cancelled with the loop: so are its senders
                for *_, future in entries:
                    future.cancel()
                raise
            for (*_, future), verdict in zip(entries, verdicts, strict=True):
                if not future.done():  # its sender may have been cancelled meanwhile
                    future.set_result(verdict)


def _counts(rt: Runtime) -> QuotaCounts:
    counts = rt.parts.get(QuotaCounts)
    if counts is None:
        counts = rt.parts[QuotaCounts] = QuotaCounts(rt)
    return counts  # type: ignore[no-any-return]
