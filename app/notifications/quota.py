"""Channel quotas in the worker (API.md §8): each channel names its quota for a delivery
(`Channel.quota`: e-mails per hour per client, webhooks per second per endpoint, a
plug-in's own).

A claimed delivery over its channel's quota is *deferred*, not failed: the engine gives it
back unspent (`deferral_repository.give_back_many`) — `pending` (never attempted) or
`retrying`, due at the quota window's reset, no attempt row — so the sweep rings it again
when the window opens and it is sent then. Quotas are counted in the shared `limits`
storage (app/ratelimit/policies.py), so every worker process draws on one budget.

Counting is set-based: a batch sent together counts in one storage round trip
(`over_quota_many`); deliveries sent one by one (capped channels: each takes its cap's slot
first) are counted just before their own sends, and the counter shares one round trip
among the hits of an event loop that wait at once (app/ratelimit/windows.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from app.channels.base import Channel, DeliveryTarget, Outcome, OutcomeKind
from app.ratelimit.channel_quotas import hit_channel_many
from app.ratelimit.windows import WindowStats
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")


async def over_quota(
    rt: Runtime, channel: Channel, target: DeliveryTarget, now: float
) -> Outcome | None:
    """Count the delivery against its channel's quota; over it, the DEFER that puts it back
    until the window resets (`now`: Unix seconds), else None (send it)."""
    return (await over_quota_many(rt, channel, [target], now))[0]


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
