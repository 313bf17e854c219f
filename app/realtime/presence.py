"""Who is online: per-process connection counts, shared across processes through Redis.

Each process keeps a sorted set per user in Redis whose members are process ids scored by
an expiry time, refreshed while the process lives; a crashed process's entries expire, so
it cannot leave users online forever.
"""

from __future__ import annotations

from collections import Counter
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

    async def refresh(self) -> None:
        return None


class RedisPresence:
    """Local counts plus a per-user sorted set of live processes in Redis."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}presence:"
        self._process = new_id()
        self._local: Counter[tuple[str, str]] = Counter()

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
        self._local[(client_id, user_id)] += 1
        if self._local[(client_id, user_id)] > 1:
            return False
        key = self._key(client_id, user_id)
        await self._redis.zadd(key, {self._process: utcnow().timestamp() + ENTRY_TTL_SECONDS})
        await self._redis.expire(key, int(ENTRY_TTL_SECONDS * 2))
        return await self._live_count(key) == 1

    async def disconnected(self, client_id: str, user_id: str) -> bool:
        local = (client_id, user_id)
        self._local[local] -= 1
        if self._local[local] > 0:
            return False
        del self._local[local]
        key = self._key(client_id, user_id)
        await self._redis.zrem(key, self._process)
        return await self._live_count(key) == 0

    async def is_online(self, client_id: str, user_id: str) -> bool:
        return await self._live_count(self._key(client_id, user_id)) > 0

    async def refresh(self) -> None:
        """Extend this process's entries (call every few seconds)."""
        expiry = utcnow().timestamp() + ENTRY_TTL_SECONDS
        async with self._redis.pipeline(transaction=False) as pipe:
            for client_id, user_id in self._local:
                key = self._key(client_id, user_id)
                pipe.zadd(key, {self._process: expiry})
                pipe.expire(key, int(ENTRY_TTL_SECONDS * 2))
            await pipe.execute()
