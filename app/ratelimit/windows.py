"""Clock-aligned fixed windows counted in a `limits` storage.

A window is `[n * period, (n + 1) * period)` on the service clock (app.core.clock), its
counter the storage key `<item>/<ids>/<n>`. One `incr` per hit (one Redis round trip)
answers the count, and the reset time follows from `n` without asking the storage for a
TTL: the RateLimit-* headers cost nothing more than the hit. The clock being the
service's also lets tests move quotas' windows with the `clock` fixture.
"""

from __future__ import annotations

import asyncio
import math
import weakref
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


# `limits`' incr_expire.lua for several keys at once, each by its own amount: the counters
# of many hits in one EVALSHA instead of one each (a round trip, a pooled connection and,
# for a request's two counters, a task apiece), which profiled at a sixth of a
# notification send's CPU.
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

# (keys, their expiries in seconds, the amount for each) -> each key's new count.
IncrMany = Callable[[Sequence[str], Sequence[int], Sequence[int]], Awaitable[list[int]]]


def _redis_incr_many(storage: Storage) -> IncrMany | None:
    """One round trip incrementing several counters of a Redis `storage` (None otherwise:
    the caller increments them one by one)."""
    bridge = getattr(storage, "bridge", None)
    if not isinstance(storage, RedisStorage) or not isinstance(bridge, RedispyBridge):
        return None
    script = bridge.get_connection().register_script(_INCR_EXPIRE_MANY.encode())

    async def incr_many(
        keys: Sequence[str], expiries: Sequence[int], amounts: Sequence[int]
    ) -> list[int]:
        args: list[int] = []
        for expiry, amount in zip(expiries, amounts, strict=True):
            args += [expiry, amount]
        counts = await script([bridge.prefixed_key(k) for k in keys], args)
        return [int(c) for c in counts]

    return incr_many


class _Coalescer:
    """The hits of one event loop waiting for the next round trip, and the task making it.

    A hit adds its cost to each key's pending amount and notes the running total; the task
    sends every pending amount in one `incr_many`, then answers each hit the count it would
    have seen alone (the key's new count less what later hits of the batch added), so the
    verdicts are those of the hits counted one after the other. While a round trip is out,
    the next hits gather for the following one: a busy API makes one per batch of requests.
    """

    def __init__(self, incr_many: IncrMany) -> None:
        self._incr_many = incr_many
        self._amounts: dict[str, list[int]] = {}  # key -> [expiry, amount]
        self._waiters: list[tuple[asyncio.Future[list[int]], list[tuple[str, int]]]] = []
        self._task: asyncio.Task[None] | None = None

    async def incr(self, keys: Sequence[str], expiries: Sequence[int], cost: int) -> list[int]:
        """Each key's count once this hit's `cost` is added."""
        marks: list[tuple[str, int]] = []
        for key, expiry in zip(keys, expiries, strict=True):
            entry = self._amounts.setdefault(key, [expiry, 0])
            entry[1] += cost
            marks.append((key, entry[1]))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[int]] = loop.create_future()
        self._waiters.append((answer, marks))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._send())
        return await answer

    async def _send(self) -> None:
        while self._waiters:
            amounts, waiters = self._amounts, self._waiters
            self._amounts, self._waiters = {}, []
            keys = list(amounts)
            try:
                counts = await self._incr_many(
                    keys, [amounts[k][0] for k in keys], [amounts[k][1] for k in keys]
                )
            except Exception as exc:
                for answer, _ in waiters:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            after = dict(zip(keys, counts, strict=True))
            for answer, marks in waiters:
                if not answer.done():
                    answer.set_result([after[k] - (amounts[k][1] - mark) for k, mark in marks])


class WindowCounter:
    """Counts hits per (limit, identifiers) in fixed windows aligned to the service clock."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # In memory (embedded mode) the counts need no storage round trip nor its upkeep.
        self._local = LocalCounts() if isinstance(storage, MemoryStorage) else None
        self._incr_many = _redis_incr_many(storage)
        # One coalescer per event loop: its task and futures belong to their loop.
        self._coalescers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Coalescer] = (
            weakref.WeakKeyDictionary()
        )

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
        elif self._incr_many is not None:
            loop = asyncio.get_running_loop()
            coalescer = self._coalescers.get(loop)
            if coalescer is None:
                coalescer = self._coalescers[loop] = _Coalescer(self._incr_many)
            counts = await coalescer.incr(keys, expiries, cost)
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
