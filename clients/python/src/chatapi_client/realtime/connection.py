"""A realtime connection that reconnects with backoff and recovers by `sync` per room.

The application sees every `message.created` of its rooms exactly once and in `seq` order
across reconnects: after each (re)connect the rooms it has a position in are synced from that
position (API.md §5: subscriptions are live once the handshake completed, so `sync` after it
plus the live events cover everything), live messages of a syncing room are held until the
sync answered, and duplicates are dropped by `seq`. Other events pass through as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chatapi_client.errors import ChatAPIError
from chatapi_client.models import Message
from chatapi_client.realtime.links import Link, LinkRefused, LinkRequestError, make_link
from chatapi_client.realtime.ordering import RoomOrder

log = logging.getLogger("chatapi_client.realtime")
Credential = Callable[[], Awaitable[dict[str, str]]]
SYNC_PAGE = 100


class RealtimeError(Exception):
    """The connection cannot go on (its credential was refused or revoked)."""


@dataclass(frozen=True)
class RealtimeEvent:
    """One server event: `name` (e.g. `message.created`) and its `data`."""

    name: str
    data: Any

    @property
    def message(self) -> Message | None:
        """The message of a `message.*` event."""
        if self.name.startswith("message.") and isinstance(self.data, dict):
            return Message.model_validate(self.data)
        return None


_END = object()


class RealtimeConnection:
    """`async for event in conn` over a connection that heals itself; see the module doc."""

    def __init__(
        self,
        base_url: str,
        credential: Credential,
        *,
        transport: str = "websocket",
        after_seq: dict[str, int] | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        request_timeout: float = 15.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.reconnects = 0
        self._credential = credential
        self._backoff = (backoff_initial, backoff_max)
        self._request_timeout = request_timeout
        self._open_timeout = open_timeout
        self._order = RoomOrder(self._deliver_message, after_seq)
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._link: Link | None = None
        self._connected = asyncio.Event()
        self._subscribed: set[str] = set()
        self._syncs: dict[str, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self.error: BaseException | None = None

    @property
    def is_connected(self) -> bool:
        """Whether a socket is up and its `connected` event was handled."""
        return self._connected.is_set()

    @property
    def positions(self) -> dict[str, int]:
        """The last delivered `seq` per room (persist it to resume after a restart)."""
        return dict(self._order.last)

    async def start(self) -> RealtimeConnection:
        """Connect (the first connection must succeed within the backoff's first attempts)."""
        self._runner = asyncio.create_task(self._run(), name="chatapi-realtime")
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            raise RealtimeError(f"could not connect: {self.error!r}") from self.error
        return self

    async def __aenter__(self) -> RealtimeConnection:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def __aiter__(self) -> AsyncIterator[RealtimeEvent]:
        while True:
            item = await self._out.get()
            if item is _END:
                self._out.put_nowait(_END)
                if self.error is not None and not self._closing:
                    raise RealtimeError(str(self.error)) from self.error
                return
            yield item

    async def request(self, event: str, data: dict[str, Any]) -> Any:
        """Send a client event (`message.send`, `typing`, `read`, …) on the live connection,
        waiting for one if it is down; its acknowledgement."""
        while True:
            await self._connected.wait()
            link = self._link
            if link is not None:
                return await link.request(event, data, self._request_timeout)

    async def subscribe(self, room_id: str, after_seq: int | None = None) -> None:
        """Follow a room (master-key connections); kept across reconnects."""
        self._subscribed.add(room_id)
        if after_seq is not None:
            self._order.last.setdefault(room_id, after_seq)
        await self.request("subscribe", {"room_id": room_id})
        if room_id in self._order.last and self._link is not None:
            self._start_sync(self._link, room_id)

    async def close(self) -> None:
        """Disconnect for good; `async for` ends."""
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._out.put_nowait(_END)

    async def _run(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                try:
                    link = make_link(
                        self.transport, self.base_url, await self._credential(), self._open_timeout
                    )
                    await link.open()
                except LinkRefused as exc:
                    self.error = exc
                    return
                except ChatAPIError as exc:
                    # Minting a connect token was refused (bad key, no such user): final.
                    self.error = exc
                    if 400 <= exc.status < 500 and exc.status != 429:
                        return
                    await asyncio.sleep(self._backoff[1])
                    continue
                except Exception as exc:
                    self.error = exc
                    delay = random.uniform(0.5, 1.0) * min(
                        self._backoff[1], self._backoff[0] * 2**attempt
                    )
                    attempt += 1
                    log.info("realtime connect failed (%r); retrying in %.2fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                attempt = 0
                self.error = None
                try:
                    await self._pump(link)
                except Exception as exc:  # e.g. a resubscribe on a link that just died
                    log.info("realtime link lost while handling an event: %r", exc)
                finally:
                    self._connected.clear()
                    self._link = None
                    for task in self._syncs.values():
                        task.cancel()
                    self._syncs.clear()
                    self._order.syncing.clear()
                    with contextlib.suppress(Exception):
                        await link.close()
                if self.error is not None:
                    return
                self.reconnects += 1
        finally:
            self._out.put_nowait(_END)

    async def _pump(self, link: Link) -> None:
        while True:
            item = await link.incoming.get()
            if item is None:
                return
            name, data = item
            if name == "refused":
                self.error = LinkRefused(f"closed by the server: {data}")
                return
            if name == "connected":
                await self._on_connected(link, data)
            elif name == "message.created" and isinstance(data, dict):
                if self._order.live(data):
                    self._start_sync(link, str(data["room_id"]))
                continue
            self._out.put_nowait(RealtimeEvent(name, data))

    async def _on_connected(self, link: Link, data: Any) -> None:
        self._link = link
        for room_id in self._subscribed:
            await link.request("subscribe", {"room_id": room_id}, self._request_timeout)
        rooms = set(data.get("room_ids") or []) if isinstance(data, dict) else set()
        for room_id in rooms | self._subscribed:
            if room_id in self._order.last:
                self._start_sync(link, room_id)
        self._connected.set()

    def _start_sync(self, link: Link, room_id: str) -> None:
        if room_id in self._syncs:
            return
        self._order.syncing.add(room_id)
        task = asyncio.create_task(self._sync(link, room_id))
        self._syncs[room_id] = task
        task.add_done_callback(lambda _: self._syncs.pop(room_id, None))

    async def _sync(self, link: Link, room_id: str) -> None:
        try:
            while True:
                after = self._order.last.get(room_id, 0)
                result = await link.request(
                    "sync",
                    {"room_id": room_id, "after_seq": after, "limit": SYNC_PAGE},
                    self._request_timeout,
                )
                self._order.synced(room_id, list(result.get("messages") or []))
                if result.get("has_more"):
                    continue
                if not self._order.flush(room_id):
                    return
        except LinkRequestError as exc:
            # E.g. the user left the room (404): stop following it rather than loop.
            log.warning("sync of room %s refused: %s", room_id, exc)
            self._order.flush(room_id)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            log.info("sync of room %s interrupted: %r", room_id, exc)
        finally:
            self._order.syncing.discard(room_id)

    def _deliver_message(self, message: dict[str, Any]) -> None:
        self._out.put_nowait(RealtimeEvent("message.created", message))
