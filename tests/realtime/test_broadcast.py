"""RedisBroadcast on the real Redis: a failed subscribe is not silent and heals."""

from __future__ import annotations

import logging

import pytest

from app.core.broadcast import RedisBroadcast
from app.core.redis import create_redis
from tests.support.realtime import until


async def test_a_failed_subscribe_is_logged_and_the_channel_is_resubscribed(
    redis_server_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    redis = create_redis(redis_server_url)
    broadcast = RedisBroadcast(redis, f"{redis_prefix}broadcast-heal:")
    await broadcast.start()
    heard: list[bytes] = []

    async def record(message: bytes) -> None:
        heard.append(message)

    try:
        await broadcast.subscribe("first", record)
        await broadcast.publish("first", b"ready")
        await until(lambda: heard == [b"ready"], "the first channel to work")
        pubsub = broadcast._pubsub
        assert pubsub is not None and pubsub.connection is not None
        with caplog.at_level(logging.WARNING, logger="chatapi.broadcast"):
            # The subscriber connection dies under the next SUBSCRIBE.
            pubsub.connection._writer.transport.abort()  # type: ignore[union-attr]
            await broadcast.subscribe("second", record)
        assert any("subscribe failed" in r.getMessage() for r in caplog.records)
        # subscribe() returned once the reader had reconnected and resubscribed every
        # channel, the new one included.
        await broadcast.publish("second", b"healed")
        await until(lambda: b"healed" in heard, "the resubscribed channel to hear")
    finally:
        await broadcast.stop()
        await redis.aclose()


async def test_publish_many_reaches_each_channel_in_order(
    redis_server_url: str, redis_prefix: str
) -> None:
    redis = create_redis(redis_server_url)
    broadcast = RedisBroadcast(redis, f"{redis_prefix}broadcast-many:")
    await broadcast.start()
    heard: dict[str, list[bytes]] = {"a": [], "b": []}

    def recorder(channel: str):  # type: ignore[no-untyped-def]
        async def record(message: bytes) -> None:
            heard[channel].append(message)

        return record

    try:
        for channel in heard:
            await broadcast.subscribe(channel, recorder(channel))
        batch = [("a", b"1"), ("b", b"x"), ("a", b"2"), ("c", b"nobody"), ("a", b"3")]
        await broadcast.publish_many(batch)
        await broadcast.publish_many([("b", b"y"), ("a", b"4")])
        await broadcast.publish_many([("b", b"z")])  # one message: a plain PUBLISH
        await until(lambda: heard == {"a": [b"1", b"2", b"3", b"4"], "b": [b"x", b"y", b"z"]},
                    "every message, in order")  # fmt: skip
    finally:
        await broadcast.stop()
        await redis.aclose()
