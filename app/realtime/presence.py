"""Who is online: per-process connection counts, shared across processes through Redis.

Each process keeps a sorted set per user in Redis whose members are process ids scored by
an expiry time, refreshed while the process lives; a crashed process's entries expire, so
it cannot leave users online forever.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from app.core.clock import utcnow
from app.core.ids import new_id

ENTRY_TTL_SECONDS = 30.0


class Presence(Protocol):
    """Counts connections; says when a user's first opens and last closes anywhere."""

    async def connected(self, client_id: str, user_id: str) -> bool: ...
    async def disconnected(self, client_id: str, user_id: str) -> bool: ...
    async def is_online(self, client_id: str, user_id: str) -> bool: ...
    async def online_users(self, client_id: str, user_ids: Sequence[str]) -> set[str]: ...
    async def refresh(self) -> None: ...


class MemoryPresence:
    """One process is the whole world."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    async def connected(self, client_id: str, user_id: str) -> bool:
        self._counts[(client_id, user_id)] += 1
        return self._counts[(client_id, user_id)] == 1

    async def disconnected(self, client_id: str, user_id: str) -> bool:
        key = (client_id, user_id)
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]
            return True
        return False

    async def is_online(self, client_id: str, user_id: str) -> bool:
        return self._counts.get((client_id, user_id), 0) > 0

    async def online_users(self, client_id: str, user_ids: Sequence[str]) -> set[str]:
        """Which of `user_ids` have a connection."""
        return {u for u in user_ids if self._counts.get((client_id, u), 0) > 0}

    async def refresh(self) -> None:
        return None


# First and last are decided inside Redis, atomically: two processes connecting (or
# disconnecting) the same user at the same moment cannot both see the other's entry, or
# both miss it. KEYS[1] the user's set; ARGV: process id, now, expiry, key ttl.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local others = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then others = others - 1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if others == 0 then return 1 end
return 0
"""
# Read-only, one round trip for a whole batch: the 1-based positions of KEYS that hold a
# live (unexpired) process entry. ARGV[1]: now.
_ONLINE = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('ZCOUNT', key, '(' .. ARGV[1], '+inf') > 0 then out[#out + 1] = i end
end
return out
"""
_DISCONNECT = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0
"""


class RedisPresence:
    """Local counts plus a per-user sorted set of live processes in Redis."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}presence:"
        self._process = new_id()
        self._local: Counter[tuple[str, str]] = Counter()
        self._connect = redis.register_script(_CONNECT)
        self._disconnect = redis.register_script(_DISCONNECT)
        self._online = redis.register_script(_ONLINE)

    def _key(self, client_id: str, user_id: str) -> str:
        return f"{self._prefix}{client_id}:{user_id}"

    async def _live_count(self, key: str) -> int:
        now = utcnow().timestamp()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            _, count = await pipe.execute()
        return int(count)

    async def connected(self, client_id: str, user_id: str) -> bool:
        local = (client_id, user_id)
        self._local[local] += 1
        if self._local[local] > 1:
            return False
        now = utcnow().timestamp()
        try:
            first = await self._connect(
                keys=[self._key(client_id, user_id)],
                args=[self._process, now, now + ENTRY_TTL_SECONDS, int(ENTRY_TTL_SECONDS * 2)],
            )
        except BaseException:
            self._forget(local)  # not counted: the caller's connection does not go ahead
            raise
        return bool(first)

    async def disconnected(self, client_id: str, user_id: str) -> bool:
        local = (client_id, user_id)
        if not self._forget(local):
            return False
        last = await self._disconnect(
            keys=[self._key(client_id, user_id)], args=[self._process, utcnow().timestamp()]
        )
        return bool(last)

    def _forget(self, local: tuple[str, str]) -> bool:
        """Count one local connection out; True when it was the process's last."""
        self._local[local] -= 1
        if self._local[local] > 0:
            return False
        del self._local[local]
        return True

    async def is_online(self, client_id: str, user_id: str) -> bool:
        return await self._live_count(self._key(client_id, user_id)) > 0

    async def online_users(self, client_id: str, user_ids: Sequence[str]) -> set[str]:
        """Which of `user_ids` have a live connection in any process: ONE round trip (a
        script over every key), so a batch holds one pooled connection, not one per user."""
        if not user_ids:
            return set()
        keys = [self._key(client_id, u) for u in user_ids]
        found = await self._online(keys=keys, args=[utcnow().timestamp()])
        return {user_ids[int(i) - 1] for i in found}

    async def refresh(self) -> None:
        """Extend this process's entries (call every few seconds)."""
        expiry = utcnow().timestamp() + ENTRY_TTL_SECONDS
        async with self._redis.pipeline(transaction=False) as pipe:
            for client_id, user_id in self._local:
                key = self._key(client_id, user_id)
                pipe.zadd(key, {self._process: expiry})
                pipe.expire(key, int(ENTRY_TTL_SECONDS * 2))
            await pipe.execute()
