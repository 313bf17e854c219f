"""Clock-aligned fixed windows counted in a `limits` storage.

A window is `[n * period, (n + 1) * period)` on the service clock (app.core.clock), its
counter the storage key `<item>/<ids>/<n>`. One `incr` per hit (one Redis round trip)
answers the count, and the reset time follows from `n` without asking the storage for a
TTL: the RateLimit-* headers cost nothing more than the hit. The clock being the
service's also lets tests move quotas' windows with the `clock` fixture.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge

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


# `limits`' incr_expire.lua for several keys at once: a request's per-key and per-client
# counters in one EVALSHA instead of two (each its own round trip, pooled connection and
# task), which profiled at a sixth of a notification send's CPU.
_INCR_EXPIRE_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local current = redis.call("incrby", key, amount)
    if tonumber(current) == amount then
        redis.call("expire", key, ARGV[2 * i - 1])
    end
    out[i] = current
end
return out
"""

IncrMany = Callable[[Sequence[str], Sequence[int], int], Awaitable[list[int]]]


def _redis_incr_many(storage: Storage) -> IncrMany | None:
    """One round trip incrementing several counters of a Redis `storage` (None otherwise:
    the caller increments them one by one)."""
    bridge = getattr(storage, "bridge", None)
    if not isinstance(storage, RedisStorage) or not isinstance(bridge, RedispyBridge):
        return None
    script = bridge.get_connection().register_script(_INCR_EXPIRE_MANY.encode())

    async def incr_many(keys: Sequence[str], expiries: Sequence[int], cost: int) -> list[int]:
        args: list[int] = []
        for expiry in expiries:
            args += [expiry, cost]
        counts = await script([bridge.prefixed_key(k) for k in keys], args)
        return [int(c) for c in counts]

    return incr_many


class WindowCounter:
    """Counts hits per (limit, identifiers) in fixed windows aligned to the service clock."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # In memory (embedded mode) the counts need no storage round trip nor its upkeep.
        self._local = LocalCounts() if isinstance(storage, MemoryStorage) else None
        self._incr_many = _redis_incr_many(storage)

    async def hit(self, item: RateLimitItem, *ids: str, cost: int = 1) -> WindowStats:
        """Count `cost` against `item` for `ids`; over the limit the hit is refused (and
        still counted: a client hammering past its limit does not get a fresh one sooner)."""
        return (await self.hit_many([(item, ids)], cost=cost))[0]

    async def hit_many(
        self, hits: Sequence[tuple[RateLimitItem, Sequence[str]]], *, cost: int = 1
    ) -> list[WindowStats]:
        """`hit` for each (item, ids), in one storage round trip; the verdicts in order."""
        now = utcnow().timestamp()
        windows = [(item, int(now // item.get_expiry())) for item, _ in hits]
        keys = [
            item.key_for(*ids, str(window))
            for (item, window), (_, ids) in zip(windows, hits, strict=True)
        ]
        # Expiry: a little over the window, so a late reader never sees a counter vanish.
        expiries = [item.get_expiry() + 1 for item, _ in windows]
        if self._local is not None:
            counts = [
                self._local.incr(key, now + expiry, cost, now)
                for key, expiry in zip(keys, expiries, strict=True)
            ]
        elif self._incr_many is not None and len(keys) > 1:
            counts = await self._incr_many(keys, expiries, cost)
        else:
            counts = [
                await self.storage.incr(key, expiry, cost)
                for key, expiry in zip(keys, expiries, strict=True)
            ]
        return [
            WindowStats(
                limit=item.amount,
                remaining=max(0, item.amount - count),
                reset_at=float((window + 1) * item.get_expiry()),
                allowed=count <= item.amount,
                period=int(item.get_expiry()),
            )
            for (item, window), count in zip(windows, counts, strict=True)
        ]
