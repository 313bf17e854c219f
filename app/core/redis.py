"""The Redis client used by the API process (bus, limits, revocation) when REDIS_URL is set."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    """A pooled asyncio Redis client that decodes nothing (callers choose)."""
    return Redis.from_url(url, socket_connect_timeout=2, health_check_interval=30)
