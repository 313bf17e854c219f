"""The `limits` storage: in memory (embedded) or Redis (shared by every process)."""

from __future__ import annotations

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import BlockingConnectionPool

from app.core.config import Settings

# Redis connections the counters may use at once, per process, and how long a hit waits for
# one. redis-py's own pool raises "Too many connections" past 100 instead of waiting: a
# worker with 400 deliveries in flight had a quota hit in fifteen fail that way, and a
# failed hit sends without counting (app/notifications/quota.py). A hit holds its
# connection for one round trip, so a few dozen serve thousands of hits a second; fewer
# connections also cost less to open (400 concurrent hits: ~250 µs of CPU per hit with 20
# or 32 connections, ~300 µs with 100).
MAX_CONNECTIONS = 32
POOL_TIMEOUT_SECONDS = 5.0


def create_storage(settings: Settings) -> Storage:
    """This deployment's counter storage: Redis when configured, else this process's memory."""
    if settings.REDIS_URL:
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_TIMEOUT_SECONDS,
            socket_connect_timeout=2,
        )
        return RedisStorage(
            "async+" + settings.REDIS_URL,
            implementation="redispy",
            key_prefix=f"{settings.REDIS_KEY_PREFIX}limits",
            connection_pool=pool,  # type: ignore[arg-type]
        )
    return MemoryStorage()


def create_limiter(settings: Settings, storage: Storage | None = None) -> MovingWindowRateLimiter:
    """A moving-window limiter on this deployment's storage."""
    return MovingWindowRateLimiter(storage or create_storage(settings))
