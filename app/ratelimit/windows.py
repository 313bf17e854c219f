"""Clock-aligned fixed windows counted in a `limits` storage.

A window is `[n * period, (n + 1) * period)` on the service clock (app.core.clock), its
counter the storage key `<item>/<ids>/<n>`. One `incr` per hit (one Redis round trip)
answers the count, and the reset time follows from `n` without asking the storage for a
TTL: the RateLimit-* headers cost nothing more than the hit. The clock being the
service's also lets tests move quotas' windows with the `clock` fixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import Storage

from app.core.clock import utcnow


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One hit's verdict: the limit, what is left of it, when the window resets (epoch s)."""

    limit: int
    remaining: int
    reset_at: float
    allowed: bool

    def reset_in(self, now: float | None = None) -> int:
        """Whole seconds until the window resets (at least 1)."""
        current = utcnow().timestamp() if now is None else now
        return max(1, math.ceil(self.reset_at - current))


class WindowCounter:
    """Counts hits per (limit, identifiers) in fixed windows aligned to the service clock."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def hit(self, item: RateLimitItem, *ids: str, cost: int = 1) -> WindowStats:
        """Count `cost` against `item` for `ids`; over the limit the hit is refused (and
        still counted: a client hammering past its limit does not get a fresh one sooner)."""
        period = item.get_expiry()
        now = utcnow().timestamp()
        window = int(now // period)
        key = item.key_for(*ids, str(window))
        # Expiry: a little over the window, so a late reader never sees a counter vanish.
        count = await self.storage.incr(key, period + 1, cost)
        return WindowStats(
            limit=item.amount,
            remaining=max(0, item.amount - count),
            reset_at=float((window + 1) * period),
            allowed=count <= item.amount,
        )
