"""Channel quotas counted for a whole batch of deliveries at once (the delivery engine's
set-based path): one storage round trip for the batch, each delivery's verdict as if it
had been counted alone, in order (`RateLimitPolicies.hit_channel` counts one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from limits import RateLimitItem

from app.channels.base import Quota
from app.ratelimit.policies import QUOTA_ITEMS, ClientLimits, RateLimitPolicies
from app.ratelimit.windows import WindowStats


async def hit_channel_many(
    policies: RateLimitPolicies,
    client_id: str,
    quotas: Sequence[Callable[[ClientLimits], Quota | None]],
) -> list[WindowStats | None]:
    """Count one send per quota function (`partial(channel.quota, target)`), in one round
    trip; each one's verdict, None where there is no quota (or limits are off). Fails open
    like `hit_channel`: the storage down, every verdict is None (sent uncounted)."""
    if not policies.enabled or not quotas:
        return [None] * len(quotas)
    limits = await policies.limits_for(client_id)
    hits: list[tuple[RateLimitItem, tuple[str, ...]]] = []
    where: list[int] = []  # the position in `quotas` of each hit
    for i, quota in enumerate(quotas):
        q = quota(limits)
        if q is not None:
            hits.append((QUOTA_ITEMS[q.per](q.limit, 1, q.namespace), q.key))
            where.append(i)
    out: list[WindowStats | None] = [None] * len(quotas)
    if not hits:
        return out
    try:
        counted = await policies.counter.hit_many(hits)
    except Exception as exc:
        policies.fail_open.failed("channel_quota", exc)
        return out
    policies.fail_open.succeeded()
    for i, stats in zip(where, counted, strict=True):
        out[i] = stats
    return out
