"""Process fan-out: a message published on a channel reaches every process's subscribers.

Embedded mode delivers in-process; with REDIS_URL it travels over Redis pub/sub, and each
process subscribes only to the channels it has handlers for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger("chatapi.broadcast")

Handler = Callable[[bytes], Awaitable[None]]


class Broadcast(Protocol):
    """Publish bytes on named channels; subscribers anywhere receive them."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, channel: str, message: bytes) -> None: ...
    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None: ...
    async def subscribe(self, channel: str, handler: Handler) -> None: ...
    async def unsubscribe(self, channel: str, handler: Handler) -> None: ...


class _Handlers:
    def __init__(self) -> None:
        self.by_channel: dict[str, list[Handler]] = defaultdict(list)

    def add(self, channel: str, handler: Handler) -> bool:
        """Add; True when this is the channel's first handler."""
        first = not self.by_channel.get(channel)
        self.by_channel[channel].append(handler)
        return first

    def remove(self, channel: str, handler: Handler) -> bool:
        """Remove; True when the channel has no handler left."""
        handlers = self.by_channel.get(channel, [])
        with contextlib.suppress(ValueError):
            handlers.remove(handler)
        if not handlers:
            self.by_channel.pop(channel, None)
            return True
        return False

    async def dispatch(self, channel: str, message: bytes) -> None:
        for handler in list(self.by_channel.get(channel, ())):
            try:
                await handler(message)
            except Exception:
                log.exception("broadcast handler failed", extra={"channel": channel})


class MemoryBroadcast:
    """In-process fan-out; publishing from another event loop hops onto the owner's loop."""

    def __init__(self) -> None:
        self._handlers = _Handlers()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._loop = None

    async def publish(self, channel: str, message: bytes) -> None:
        loop = self._loop
        if loop is None:
            return
        if loop is asyncio.get_running_loop():
            await self._handlers.dispatch(channel, message)
        else:
            future = asyncio.run_coroutine_threadsafe(
                self._handlers.dispatch(channel, message), loop
            )
            await asyncio.wrap_future(future)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """`publish` each (channel, message), in order."""
        for channel, message in messages:
            await self.publish(channel, message)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.add(channel, handler)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.remove(channel, handler)


SUBSCRIBE_TIMEOUT_SECONDS = 5.0
# Every (channel, message) pair of ARGV published, in order, in one command: a pipeline of
# PUBLISHes costs the client a command packed and a reply parsed per message (27 us each
# where this costs 7, measured with redis-py 7 on 100-message batches).
_PUBLISH_MANY = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end"


class RedisBroadcast:
    """Redis pub/sub fan-out with one subscriber connection per process.

    The reader owns the connection: it (re)subscribes to every channel with handlers each
    time it connects, so a Redis restart or an outage at start-up only delays messages.
    `subscribe` returns once Redis confirmed the subscription, so a message published
    after it returns is heard. A subscribe that fails is logged and makes the reader
    reconnect, which resubscribes everything (nothing stays deaf until a later outage).
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}bus:"
        self._handlers = _Handlers()
        self._pubsub: PubSub | None = None
        self._ready = asyncio.Event()  # set while the reader is subscribed to everything
        self._confirming: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._reader: asyncio.Task[None] | None = None
        self._publish_many = redis.register_script(_PUBLISH_MANY)

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="broadcast-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def publish(self, channel: str, message: bytes) -> None:
        await self._redis.publish(self._prefix + channel, message)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish every (channel, message), in order, in one command (a script): one round
        trip and one pooled connection for a whole batch."""
        if not messages:
            return
        if len(messages) == 1:
            await self.publish(*messages[0])
            return
        prefix = self._prefix
        args = [part for channel, message in messages for part in (prefix + channel, message)]
        await self._publish_many(args=args)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        if not self._handlers.add(channel, handler):
            return
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                await self._confirmed_subscribe(pubsub, self._prefix + channel)
                return
            except Exception as exc:
                log.warning(
                    "broadcast subscribe failed, resubscribing every channel",
                    extra={"channel": channel, "error": repr(exc)},
                )
                await self._drop(pubsub)
        # The reader (re)connects and subscribes every channel with handlers, this one too.
        try:
            await asyncio.wait_for(self._ready.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error(
                "broadcast subscribe still pending: Redis unreachable",
                extra={"channel": channel},
            )

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        if self._handlers.remove(channel, handler) and self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(self._prefix + channel)
            except Exception as exc:
                # Harmless: messages for a channel without handlers are dropped.
                log.warning(
                    "broadcast unsubscribe failed", extra={"channel": channel, "error": repr(exc)}
                )

    async def _confirmed_subscribe(self, pubsub: PubSub, name: str) -> None:
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirming[name].append(confirmed)
        try:
            await pubsub.subscribe(name)
            await asyncio.wait_for(confirmed, SUBSCRIBE_TIMEOUT_SECONDS)
        finally:
            waiters = self._confirming.get(name, [])
            with contextlib.suppress(ValueError):
                waiters.remove(confirmed)
            if not waiters:
                self._confirming.pop(name, None)

    async def _drop(self, pubsub: PubSub) -> None:
        """Make the reader abandon `pubsub` and reconnect."""
        if self._pubsub is pubsub:
            self._pubsub = None
            self._ready.clear()
        if pubsub.connection is not None:
            with contextlib.suppress(Exception):
                await pubsub.connection.disconnect()

    async def _read_forever(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                # A channel nobody publishes on keeps the connection subscribed when idle.
                subscribed: set[str] = set()
                while True:
                    wanted = {self._prefix + "_keepalive"}
                    wanted |= {self._prefix + c for c in self._handlers.by_channel}
                    missing = wanted - subscribed
                    if not missing:  # nothing added while we were subscribing
                        break
                    await pubsub.subscribe(*sorted(missing))
                    subscribed |= missing
                self._pubsub = pubsub
                self._ready.set()
                await self._pump(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broadcast lost Redis, reconnecting", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
            finally:
                if self._pubsub is pubsub:
                    self._pubsub = None
                    self._ready.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _pump(self, pubsub: PubSub) -> None:
        strip = len(self._prefix)
        while self._pubsub is pubsub:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            channel = message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if message.get("type") == "subscribe":
                for waiter in self._confirming.get(name, []):
                    if not waiter.done():
                        waiter.set_result(None)
            elif message.get("type") == "message":
                await self._handlers.dispatch(name[strip:], message["data"])
