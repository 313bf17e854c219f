"""Limits under concurrency: more hits than the Redis storage has connections, and a cold
cache of a client's limits asked for by many at once."""

from __future__ import annotations

import asyncio
from typing import Any

from limits import RateLimitItemPerMinute
from sqlalchemy import event

from app.core.ids import new_id
from app.ratelimit.storage import MAX_CONNECTIONS, create_storage
from app.ratelimit.windows import WindowCounter
from app.runtime import Runtime
from tests.conftest import make_settings
from tests.support.api import Api


async def test_hits_beyond_the_pool_wait_for_a_connection_and_all_count(
    redis_server_url: str, redis_prefix: str
) -> None:
    # A worker counts a quota hit per delivery in flight (hundreds); redis-py's default pool
    # raised "Too many connections" past 100 and the quota went uncounted.
    settings = make_settings(
        "sqlite+aiosqlite:///:memory:", REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=redis_prefix
    )
    counter = WindowCounter(create_storage(settings))
    hits = 3 * MAX_CONNECTIONS
    item = RateLimitItemPerMinute(10 * hits, 1, "test")
    subject = new_id()

    results = await asyncio.gather(*(counter.hit(item, subject) for _ in range(hits)))

    assert all(r.allowed for r in results)
    assert sorted(r.remaining for r in results) == list(range(9 * hits, 10 * hits))


async def test_a_cold_cache_is_read_once_however_many_ask_at_once(api: Api) -> None:
    # 400 deliveries in flight found the cache expired together and each read the client.
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    tenant = await api.tenant()
    runtime.limits.forget(tenant.id)
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM clients" in statement:
            reads.append(statement)

    # Limits are read on the read pool (on SQLite a pool of its own beside the one writer).
    engine = runtime.db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        got = await asyncio.gather(*(runtime.limits.limits_for(tenant.id) for _ in range(50)))
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert len(reads) == 1
    assert len(set(got)) == 1


async def test_several_counters_count_in_one_round_trip_on_the_same_keys_as_one(
    redis_server_url: str, redis_prefix: str
) -> None:
    # A request's per-key and per-client counters are one EVALSHA (hit_many); they must be
    # the very counters a single hit counts, each created with its window's expiry.
    settings = make_settings(
        "sqlite+aiosqlite:///:memory:", REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=redis_prefix
    )
    storage = create_storage(settings)
    counter = WindowCounter(storage)
    per_key = RateLimitItemPerMinute(5, 1, "test-k")
    per_client = RateLimitItemPerMinute(3, 1, "test-c")
    key, client = new_id(), new_id()
    await counter.hit(per_client, client)
    redis = storage.bridge.get_connection()  # type: ignore[attr-defined]
    commands: list[str] = []
    real = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        commands.append(str(args[0]))
        return await real(*args, **options)

    redis.execute_command = counted
    try:
        first = await counter.hit_many([(per_key, (key,)), (per_client, (client,))])
        again = await counter.hit_many([(per_key, (key,)), (per_client, (client,))])
    finally:
        del redis.execute_command
    ttls = [await redis.ttl(k) async for k in redis.scan_iter(f"{redis_prefix}*test-[kc]*")]

    assert [s.remaining for s in first] == [4, 1]
    assert [(s.remaining, s.allowed) for s in again] == [(3, True), (0, True)]
    assert len(commands) == 2  # one per hit_many (EVALSHA; EVAL once if the script was new)
    assert len(ttls) == 2 and all(0 < ttl <= 61 for ttl in ttls)


async def test_concurrent_hits_share_round_trips_and_count_as_one_after_another(
    redis_server_url: str, redis_prefix: str
) -> None:
    # Hits waiting at once go out together; each still gets the verdict it would have had
    # alone (the counts are those of the hits made one after the other).
    settings = make_settings(
        "sqlite+aiosqlite:///:memory:", REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=redis_prefix
    )
    storage = create_storage(settings)
    counter = WindowCounter(storage)
    per_key = RateLimitItemPerMinute(30, 1, "test-k")
    per_client = RateLimitItemPerMinute(40, 1, "test-c")
    client = new_id()
    keys = [new_id() for _ in range(3)]
    redis = storage.bridge.get_connection()  # type: ignore[attr-defined]
    commands: list[str] = []
    real = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        commands.append(str(args[0]))
        return await real(*args, **options)

    redis.execute_command = counted
    try:
        verdicts = await asyncio.gather(
            *(
                counter.hit_many([(per_key, (keys[i % 3],)), (per_client, (client,))])
                for i in range(45)
            )
        )
    finally:
        del redis.execute_command

    assert len(commands) <= 2
    assert sorted(v[1].remaining for v in verdicts) == [0] * 6 + list(range(1, 40))
    assert [v[1].allowed for v in verdicts].count(False) == 5
    for k in range(3):
        assert sorted(v[0].remaining for v in verdicts[k::3]) == list(range(15, 30))
