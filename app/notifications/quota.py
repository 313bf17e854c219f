"""Channel quotas in the worker (API.md §8): each channel names its quota for a delivery
(`Channel.quota`: e-mails per hour per client, webhooks per second per endpoint, a
plug-in's own).

A claimed delivery over its channel's quota is *deferred*, not failed: the engine gives it
back unspent (`deferral_repository.give_back_many`) — `pending` (never attempted) or
`retrying`, due at the quota window's reset, no attempt row — so the sweep rings it again
when the window opens and it is sent then. Quotas are counted in the shared `limits`
storage (app/ratelimit/policies.py), so every worker process draws on one budget.
"""

from __future__ import annotations

import logging
from functools import partial

from app.channels.base import Channel, DeliveryTarget, Outcome, OutcomeKind
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")


async def over_quota(
    rt: Runtime, channel: Channel, target: DeliveryTarget, now: float
) -> Outcome | None:
    """Count the delivery against its channel's quota; over it, the DEFER that puts it back
    until the window resets (`now`: Unix seconds), else None (send it)."""
    try:
        stats = await rt.limits.hit_channel(target.client_id, partial(channel.quota, target))
    except Exception:
        # The quota's storage is down: sending beats holding every delivery back.
        log.exception("channel quota unavailable; sending anyway")
        return None
    if stats is None or stats.allowed:
        return None
    return Outcome(
        OutcomeKind.DEFER,
        retry_after=max(stats.reset_at - now, 0.0),
        error=f"over the {channel.name} quota until its window resets",
    )
