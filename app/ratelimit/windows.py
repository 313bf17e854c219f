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
from limits.aio.storage import MemoryStorage, Storage

from app.core.clock import utcnow

_WINDOW_WORDS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One hit's verdict: the limit, what is left of it, when the window resets (epoch s)."""

    limit: int
    remaining: int
    reset_at: float
    allowed: bool
    period: int = 60  # the window's length in seconds
    scope: str = ""  # whose budget it is, for a refusal to say ("per API key", …)

    def window(self) -> str:
        """The window in words, for messages: "second", "minute", "hour" or "N seconds"."""
        return _WINDOW_WORDS.get(self.period, f"{self.period} seconds")

    def reset_in(self, now: float | None = None) -> int:
        """Whole seconds until the window resets (at least 1)."""
        current = utcnow().timestamp() if now is None else now
        return max(1, math.ceil(self.reset_at - current))


class LocalCounts:
    """Counters in this process's memory, each dropped once its window is over.

    What `limits`' MemoryStorage does for `incr`, without its cost per call: it starts a
    task on every increment that walks every key it holds (and hops to a thread per
    moving-window key), profiled at several percent of an embedded-mode request. Here
    expired counters are swept at most once a second.
    """

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._next_sweep = 0.0

    def incr(self, key: str, expires_at: float, cost: int, now: float) -> int:
        """Add `cost` to `key` (created to expire at `expires_at`); the new count."""
        if now >= self._next_sweep:
            self._sweep(now)
        count = self._counts.get(key, 0) + cost
        self._counts[key] = count
        if count == cost:
            self._expires[key] = expires_at
        return count

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.SWEEP_SECONDS
        for key in [k for k, at in self._expires.items() if at <= now]:
            del self._expires[key]
            self._counts.pop(key, None)


class WindowCounter:
    """Counts hits per (limit, identifiers) in fixed windows aligned to the service clock."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # In memory (embedded mode) the counts need no storage round trip nor its upkeep.
        self._local = LocalCounts() if isinstance(storage, MemoryStorage) else None

    async def hit(self, item: RateLimitItem, *ids: str, cost: int = 1) -> WindowStats:
        """Count `cost` against `item` for `ids`; over the limit the hit is refused (and
        still counted: a client hammering past its limit does not get a fresh one sooner)."""
        period = item.get_expiry()
        now = utcnow().timestamp()
        window = int(now // period)
        key = item.key_for(*ids, str(window))
        # Expiry: a little over the window, so a late reader never sees a counter vanish.
        if self._local is not None:
            count = self._local.incr(key, now + period + 1, cost, now)
        else:
            count = await self.storage.incr(key, period + 1, cost)
        return WindowStats(
            limit=item.amount,
            remaining=max(0, item.amount - count),
            reset_at=float((window + 1) * period),
            allowed=count <= item.amount,
            period=int(period),
        )
