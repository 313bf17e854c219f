"""The embedded worker's broker: kombu's in-memory transport, woken when there is work.

kombu's memory transport is a virtual transport: an idle consumer polls its queues every
`polling_interval` (here it was 50 ms, for latency) — 20 wake-ups a second that compete
for the GIL with the API's event loop in the same process (profiled at ~10% of the
process's samples under socket fan-out). This one sleeps until a message is published, or
one is acknowledged or rejected (freeing a prefetch slot), or at the latest
`IDLE_WAKE_SECONDS`, a safety net, not the latency path.
"""

from __future__ import annotations

import threading
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import memory

IDLE_WAKE_SECONDS = 1.0

_changed = threading.Condition()
_changes = 0  # bumped under _changed whenever a consumer may have something to do


def _ring() -> None:
    global _changes
    with _changed:
        _changes += 1
        _changed.notify_all()


def _changes_seen() -> int:
    with _changed:
        return _changes


def _wait_for_change(seen: int, timeout: float) -> None:
    with _changed:
        _changed.wait_for(lambda: _changes != seen, timeout)


class Channel(memory.Channel):  # type: ignore[misc]
    """The in-memory channel, ringing the consumer on what may let it consume."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        _ring()

    def _put_fanout(
        self, exchange: Any, message: Any, routing_key: Any = None, **kwargs: Any
    ) -> None:
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        _ring()

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        _ring()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)
        _ring()


class Transport(memory.Transport):  # type: ignore[misc]
    """The in-memory transport, draining without a polling loop."""

    Channel = Channel

    def drain_events(  # type: ignore[override]  # kombu's base class types it loosely
        self, connection: Any, timeout: float | None = None
    ) -> None:
        """Deliver one message, waiting for one up to `timeout` seconds (socket.timeout)."""
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            # Read the count before looking: a message published after the look changes
            # it, so the wait below returns at once instead of missing it.
            seen = _changes_seen()
            try:
                self.cycle.get(self._deliver, timeout=timeout)  # type: ignore[union-attr]
                return
            except Empty:
                pass
            wait = IDLE_WAKE_SECONDS
            if deadline is not None:
                left = deadline - monotonic()
                if left <= 0:
                    raise TimeoutError()  # socket.timeout, which kombu's callers expect
                wait = min(wait, left)
            _wait_for_change(seen, wait)
