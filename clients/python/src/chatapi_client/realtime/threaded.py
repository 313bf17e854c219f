"""The realtime connection for synchronous code (Django, Flask, scripts): the asyncio
connection runs on its own event loop in a background thread; events arrive through a queue."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from chatapi_client.realtime.connection import RealtimeConnection, RealtimeError, RealtimeEvent

T = TypeVar("T")
_END = object()


class SyncRealtimeConnection:
    """`for event in conn`; `conn.get(timeout)`; `conn.request(...)`; `conn.close()`."""

    def __init__(self, factory: Callable[[], RealtimeConnection]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="chatapi-rt"
        )
        self._thread.start()
        self._events: queue.Queue[Any] = queue.Queue()
        self._closed = False
        try:
            self._conn = self._call(self._open(factory))
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self, factory: Callable[[], RealtimeConnection]) -> RealtimeConnection:
        conn = factory()
        await conn.start()
        asyncio.get_running_loop().create_task(self._forward(conn))
        return conn

    async def _forward(self, conn: RealtimeConnection) -> None:
        try:
            async for event in conn:
                self._events.put(event)
        except RealtimeError as exc:
            self._events.put(exc)
        finally:
            self._events.put(_END)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def positions(self) -> dict[str, int]:
        """The last delivered `seq` per room."""
        return self._conn.positions

    @property
    def is_connected(self) -> bool:
        """Whether a socket is up right now."""
        return self._conn.is_connected

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established."""
        return self._conn.reconnects

    def get(self, timeout: float | None = None) -> RealtimeEvent | None:
        """The next event; None when the connection ended or `timeout` passed first."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._events.put(_END)
            return None
        if isinstance(item, RealtimeError):
            self._events.put(_END)
            raise item
        assert isinstance(item, RealtimeEvent)
        return item

    def __iter__(self) -> Iterator[RealtimeEvent]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def request(self, event: str, data: dict[str, Any], timeout: float | None = 30) -> Any:
        """Send a client event and wait for its acknowledgement."""
        return self._call(self._conn.request(event, data), timeout)

    def subscribe(self, room_id: str, after_seq: int | None = None) -> None:
        """Follow a room (master-key connections)."""
        self._call(self._conn.subscribe(room_id, after_seq), 30)

    def close(self) -> None:
        """Disconnect and stop the background loop."""
        if self._closed:
            return
        self._closed = True
        self._call(self._conn.close(), 30)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SyncRealtimeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
