"""A channel's own in-flight cap per key (the webhook channel: requests per endpoint), and
how whoever waits for it hears that a slot freed.

A channel at its cap answers `Outcome(DEFER, capacity_key=key)` rather than waiting: a
waiting attempt would hold its worker slot doing nothing while other targets' work queues.
The refusal is ours, not the target's, so it is never an attempt (DESIGN.md §4); the delivery
engine gives the row back and takes it up again when `release` reports that the key has a
free slot (app/channels/waiting.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from app.channels.base import DeliveryTarget

log = logging.getLogger("chatapi.channels")

Listener = Callable[[str], None]


class InFlightCap:
    """At most `limit` attempts in flight per key in this process (one event loop)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: Counter[str] = Counter()
        self._listeners: list[Listener] = []

    def free(self, key: str) -> int:
        """Slots of `key` not in use now."""
        return max(self.limit - self._in_flight[key], 0)

    def try_acquire(self, key: str) -> bool:
        """Take a slot of `key`; False (and nothing taken) when all are in use."""
        if self._in_flight[key] >= self.limit:
            return False
        self._in_flight[key] += 1
        return True

    def release(self, key: str, *, notify: bool = True) -> None:
        """Give a slot of `key` back and tell every listener, in the releasing call.

        `notify=False` for a slot given back unused because another of our limits refused
        the attempt (a quota): waking the next waiting one would only meet the same limit.
        """
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]
        if not notify:
            return
        for listener in list(self._listeners):
            try:
                listener(key)
            except Exception:
                # A listener's bug must not break the attempt that released the slot.
                log.exception("in-flight cap listener failed")

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(key)` each time a slot of `key` is released."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling `listener` (absent: nothing happens)."""
        if listener in self._listeners:
            self._listeners.remove(listener)


@runtime_checkable
class Capped(Protocol):
    """A channel with an in-flight cap: its `capacity`, and the key a target counts under."""

    capacity: InFlightCap

    def capacity_key(self, target: DeliveryTarget) -> str | None:
        """The key `target`'s attempt counts under (None: not capped)."""
        ...
