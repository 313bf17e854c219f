"""The `limits` storage: in memory (embedded) or Redis (shared by every process)."""

from __future__ import annotations

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from app.core.config import Settings


def create_limiter(settings: Settings) -> MovingWindowRateLimiter:
    """A moving-window limiter on this deployment's storage."""
    storage: Storage
    if settings.REDIS_URL:
        storage = RedisStorage(
            "async+" + settings.REDIS_URL,
            implementation="redispy",
            key_prefix=f"{settings.REDIS_KEY_PREFIX}limits",
        )
    else:
        storage = MemoryStorage()
    return MovingWindowRateLimiter(storage)
