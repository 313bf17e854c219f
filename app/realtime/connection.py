"""One live client connection, whichever transport carries it.

Outbound events are queued without waiting, in a bounded queue drained by one writer task
per connection (for Socket.IO too, once its session is on a websocket: Engine.IO's own
queue only while it is long-polling or has packets of its own unsent), so a consumer that
falls behind is disconnected with a clear reason instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any

import orjson
from engineio import packet as eio_packet

from app.auth.principal import Principal
from app.core.clock import monotonic
from app.core.ids import new_id

log = logging.getLogger("chatapi.realtime")

SEND_QUEUE_SIZE = 256
EVENTS_PER_SECOND = 20.0
EVENT_BURST = 40.0

# Close codes in the 4000 range are ours (RFC 6455 leaves them to applications).
CLOSE_INTERNAL_ERROR = 1011
CLOSE_UNAUTHORIZED = 4401
CLOSE_REVOKED = 4403
CLOSE_SLOW_CONSUMER = 4408
CLOSE_RATE_LIMITED = 4429


class Frame:
    """One outbound event, encoded at most once per wire format however many connections
    receive it (fan-out to a room of N costs one encoding, not N)."""

    __slots__ = ("_eio", "_eio_text", "_sio", "_ws", "data", "event")

    def __init__(self, event: str, data: dict[str, Any]) -> None:
        self.event = event
        self.data = data
        self._ws: str | None = None
        self._sio: str | None = None
        self._eio: eio_packet.Packet | None = None
        self._eio_text: str | None = None

    def websocket_text(self) -> str:
        """`{"event","data"}` as JSON text."""
        if self._ws is None:
            self._ws = orjson.dumps({"event": self.event, "data": self.data}).decode()
        return self._ws

    def socketio_packet(self) -> str:
        """A Socket.IO EVENT packet for the default namespace (`2["event",data]`)."""
        if self._sio is None:
            self._sio = "2" + orjson.dumps([self.event, self.data]).decode()
        return self._sio

    def engineio_text(self) -> str:
        """That Socket.IO packet as Engine.IO MESSAGE text (`42["event",data]`): what goes
        on a Socket.IO websocket, the same string for every connection."""
        if self._eio_text is None:
            self._eio_text = str(self.engineio_message().encode())
        return self._eio_text

    def engineio_message(self) -> eio_packet.Packet:
        """That Socket.IO packet as an Engine.IO MESSAGE packet, which caches its own wire
        text: every socket's writer sends the same string."""
        if self._eio is None:
            self._eio = eio_packet.Packet(eio_packet.MESSAGE, data=self.socketio_packet())
        return self._eio


class Connection(ABC):
    """A connection of one key; subclasses hand frames to their transport."""

    transport = "abstract"

    def __init__(self, principal: Principal) -> None:
        self.id = new_id()
        self.principal = principal
        self.targets: set[str] = set()
        self._tokens = EVENT_BURST
        self._refilled = monotonic()
        self._typing_at: dict[str, float] = {}
        self._greeting: Frame | None = None
        self._closing: asyncio.Task[None] | None = None
        self.closed = False
        self.counted = False  # counted in presence (the hub counts it out on unregister)

    @property
    def client_id(self) -> str:
        """The tenant."""
        return self.principal.client_id

    @property
    def user_id(self) -> str | None:
        """The user (None for a master key)."""
        return self.principal.user_id

    def greet(self, event: str, data: dict[str, Any]) -> None:
        """Set the frame written before anything queued (`connected`), whatever was
        queued while the connection was being set up."""
        self._greeting = Frame(event, data)

    @abstractmethod
    def start(self) -> None:
        """Start writing (once the transport's handshake has been answered): the greeting
        first, then whatever was queued meanwhile, in order."""

    def enqueue(self, event: str, data: dict[str, Any]) -> None:
        """Queue an event for this connection only."""
        self.enqueue_frame(Frame(event, data))

    @abstractmethod
    def enqueue_frame(self, frame: Frame) -> None:
        """Queue a (possibly shared) frame without waiting; a consumer too far behind is
        disconnected (`_too_slow`)."""

    def _too_slow(self) -> None:
        """Schedule the close of a consumer that does not read its events (once)."""
        if self._closing is not None:
            return  # one close is on its way; later overflows add nothing
        log.warning("slow consumer disconnected", extra={"connection": self.id})
        self._closing = asyncio.get_running_loop().create_task(
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer: events were not read in time")
        )

    def allow_client_event(self) -> bool:
        """Token bucket on client → server events."""
        now = monotonic()
        self._tokens = min(EVENT_BURST, self._tokens + (now - self._refilled) * EVENTS_PER_SECOND)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def allow_typing(self, room_id: str, interval: float = 1.0) -> bool:
        """At most one typing event per room per `interval` seconds."""
        now = monotonic()
        if now - self._typing_at.get(room_id, 0.0) < interval:
            return False
        self._typing_at[room_id] = now
        return True

    async def close(self, code: int, reason: str) -> None:
        """Stop writing and close the transport with `code` and `reason`."""
        if self.closed:
            return
        self.closed = True
        await self.stop_writer()
        with contextlib.suppress(Exception):
            await self._close_transport(code, reason)

    async def stop_writer(self) -> None:
        """Write nothing more (the transport is gone or closing)."""
        self.closed = True

    @abstractmethod
    async def _close_transport(self, code: int, reason: str) -> None:
        """Close the underlying transport."""


class QueuedConnection(Connection):
    """A connection whose outbound events wait in a bounded list drained by its own writer
    task (a transport with no send queue of its own: the plain WebSocket).

    A list and a future made only while the writer waits, not an asyncio.Queue (four
    deques and an Event): this is per idle connection, by the ten thousand. An event for
    an idle writer is written on the spot instead (`_write_now`): at fan-out, a task
    switch per connection per event was most of the cost.
    """

    def __init__(self, principal: Principal) -> None:
        super().__init__(principal)
        self._frames: list[Frame] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        # A write begun by `_write_now` that had to wait (transport paused): the writer
        # finishes it before anything else.
        self._unfinished: tuple[Coroutine[Any, Any, None], Any] | None = None

    def start(self) -> None:
        """Start the writer task."""
        if self._writer is None and not self.closed:
            self._writer = asyncio.create_task(self._drain(), name=f"conn-writer-{self.id}")

    def enqueue_frame(self, frame: Frame) -> None:
        """Queue a frame (or write it now if the writer is idle); SEND_QUEUE_SIZE unsent
        ones mean the consumer is too slow."""
        if self.closed:
            return
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done() and not self._frames:
            self._write_now(frame, wakeup)
            return
        if len(self._frames) >= SEND_QUEUE_SIZE:
            self._too_slow()
            return
        self._frames.append(frame)
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _write_now(self, frame: Frame, wakeup: asyncio.Future[None]) -> None:
        # Run the write coroutine in the caller's turn of the loop: a transport that takes
        # the bytes at once (the usual case) finishes it without suspending. One that must
        # wait (its buffer is full) leaves it to the writer, which everything after it
        # queues behind, so the order holds.
        write = self._write(frame)
        try:
            waiting_on = write.send(None)
        except StopIteration:
            return
        except Exception:
            if self._closing is None:  # as `_drain` does, once
                log.warning(
                    "connection writer failed", exc_info=True, extra={"connection": self.id}
                )
                self._closing = asyncio.get_running_loop().create_task(
                    self.close(CLOSE_INTERNAL_ERROR, "server error while sending")
                )
            return
        self._unfinished = (write, waiting_on)
        wakeup.set_result(None)

    async def stop_writer(self) -> None:
        """Cancel the writer task (the transport is gone or closing)."""
        self.closed = True
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        unfinished, self._unfinished = self._unfinished, None
        if unfinished is not None:
            unfinished[0].close()

    async def _next_frame(self) -> Frame | None:
        """The next queued frame; None when a write begun by `_write_now` is to be finished
        first."""
        while not self._frames and self._unfinished is None:
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None
        if self._unfinished is not None:
            return None
        return self._frames.pop(0)  # at most SEND_QUEUE_SIZE long

    async def _drain(self) -> None:
        greeting, self._greeting = self._greeting, None
        try:
            if greeting is not None:
                await self._write(greeting)
            while True:
                frame = await self._next_frame()
                if frame is not None:
                    await self._write(frame)
                elif self._unfinished is not None:
                    (write, waiting_on), self._unfinished = self._unfinished, None
                    await _finish(write, waiting_on)
        except Exception:
            # Usually the peer went away. Say so and close: a connection whose writer is
            # gone would otherwise look alive while dropping every event.
            log.warning("connection writer failed", exc_info=True, extra={"connection": self.id})
            await self.close(CLOSE_INTERNAL_ERROR, "server error while sending")

    @abstractmethod
    async def _write(self, frame: Frame) -> None:
        """Send one event frame."""


async def _finish(write: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Drive a write coroutine that `_write_now` started and that suspended on
    `waiting_on` (what a Task would do with it: wait for that future, then resume)."""
    try:
        while True:
            if waiting_on is None:  # a bare yield: one turn of the loop
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False
                await asyncio.wait((waiting_on,))
            try:
                waiting_on = write.send(None)
            except StopIteration:
                return
    finally:
        write.close()  # a no-op once finished; on cancellation, unwinds the write
