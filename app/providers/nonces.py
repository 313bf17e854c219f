"""Nonces seen in providers' signed event requests (Mailgun's token), so a captured
signature cannot be replayed with another body within its timestamp window.

Shared by every process through Redis when REDIS_URL is set (`SET NX EX`); in embedded mode
(one process) a dictionary of this process. Kept for `ttl` seconds: longer than the window
in which the signature's timestamp is accepted, after which a replay is stale anyway.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from app.core.clock import monotonic

# Mailgun refuses timestamps more than 5 minutes off: twice that covers both directions.
NONCE_TTL_SECONDS = 600
# Purge the in-process dictionary when it grows past this many entries.
_PURGE_AT = 10_000


class NonceGuard:
    """`first_time(key)`: True the first time `key` is seen within NONCE_TTL_SECONDS."""

    def __init__(self, redis: Redis | None, prefix: str, ttl: float = NONCE_TTL_SECONDS) -> None:
        self._redis = redis
        self._prefix = f"{prefix}provider-nonce:"
        self._ttl = ttl
        self._seen: dict[str, float] = {}

    async def first_time(self, key: str) -> bool:
        """Remember `key`; whether it was new."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        if self._redis is not None:
            stored = await self._redis.set(self._prefix + digest, b"1", nx=True, ex=int(self._ttl))
            return bool(stored)
        now = monotonic()
        if len(self._seen) > _PURGE_AT:
            self._seen = {k: until for k, until in self._seen.items() if until > now}
        until = self._seen.get(digest)
        if until is not None and until > now:
            return False
        self._seen[digest] = now + self._ttl
        return True
