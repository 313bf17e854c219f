"""The `limits` storage: in memory (embedded) or Redis (shared by every process)."""

from __future__ import annotations

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from app.core.config import Settings


def create_storage(settings: Settings) -> Storage:
    """This deployment's counter storage: Redis when configured, else this process's memory."""
    if settings.REDIS_URL:
        return RedisStorage(
            "async+" + settings.REDIS_URL,
            implementation="redispy",
            key_prefix=f"{settings.REDIS_KEY_PREFIX}limits",
        )
    return MemoryStorage()


def create_limiter(settings: Settings, storage: Storage | None = None) -> MovingWindowRateLimiter:
    """A moving-window limiter on this deployment's storage."""
    return MovingWindowRateLimiter(storage or create_storage(settings))
