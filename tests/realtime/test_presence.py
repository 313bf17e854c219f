"""Presence across processes on the real Redis: first and last are decided atomically."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.core.clock import ManualClock
from app.core.redis import create_redis
from app.realtime.presence import ENTRY_TTL_SECONDS, RedisPresence


@pytest.fixture
async def two_processes(
    redis_server_url: str, redis_prefix: str
) -> AsyncIterator[tuple[RedisPresence, RedisPresence]]:
    """Two processes' presence: own Redis clients, own process ids, one key space."""
    clients: list[Redis] = [create_redis(redis_server_url), create_redis(redis_server_url)]
    prefix = f"{redis_prefix}presence-race:"
    yield RedisPresence(clients[0], prefix), RedisPresence(clients[1], prefix)
    for client in clients:
        await client.aclose()


async def test_two_processes_connecting_a_user_at_once_announce_online_exactly_once(
    two_processes: tuple[RedisPresence, RedisPresence],
) -> None:
    a, b = two_processes
    for _ in range(30):
        user = secrets.token_hex(4)
        firsts = await asyncio.gather(a.connected("c", user), b.connected("c", user))
        assert sorted(firsts) == [False, True], "exactly one process says online"
        lasts = await asyncio.gather(a.disconnected("c", user), b.disconnected("c", user))
        assert sorted(lasts) == [False, True], "exactly one process says offline"
        assert not await a.is_online("c", user)


async def test_a_second_local_connection_is_not_first_and_not_last(
    two_processes: tuple[RedisPresence, RedisPresence],
) -> None:
    a, b = two_processes
    user = secrets.token_hex(4)
    assert await a.connected("c", user) is True
    assert await a.connected("c", user) is False
    assert await b.connected("c", user) is False
    assert await a.disconnected("c", user) is False
    assert await a.disconnected("c", user) is False
    assert await b.is_online("c", user)
    assert await b.disconnected("c", user) is True


async def test_a_batch_lookup_answers_for_every_user_in_one_round_trip(
    two_processes: tuple[RedisPresence, RedisPresence], clock: ManualClock
) -> None:
    a, b = two_processes
    users = [secrets.token_hex(4) for _ in range(600)]
    online = set(users[::7])
    for user in online:
        await (a if len(user) % 2 else b).connected("c", user)
    await a.connected("other", users[1])  # another tenant's user is not this tenant's
    assert await b.online_users("c", users) == online
    assert await a.online_users("c", []) == set()
    # A process that stops refreshing (crashed) no longer keeps its users online.
    clock.advance(ENTRY_TTL_SECONDS + 1)
    assert await b.online_users("c", users) == set()
