"""Deliveries refused by a channel's in-flight cap, waiting in this process for a slot.

A cap's refusal is given back unspent and stays due as it was (deferral_repository); this
registry remembers it under its (channel, key), oldest first. Whenever the cap reports a
released slot of that key (app/channels/capacity.py) — the end of a request this very
process made — the oldest waiting delivery is claimed and sent at once, not on a timer. When
the claim finds nothing (cancelled, or another worker took it) the next one is tried.

Memory is not the truth: the rows stay due in the database, so whatever this registry loses
(the worker killed, more than `MAX_WAITING_PER_KEY` waiting) the beat sweep rings again once
per lease of waiting (`sweep.should_ring`). A stopping worker wakes nothing more; at `close`
its waiting rows, and those it gave back while stopping, are handed to the next worker
(`delivery.stop_waiting`: due now, and rung).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from app.channels.capacity import Capped, InFlightCap

log = logging.getLogger("chatapi.notifications")

# Deliveries remembered per cap key; beyond it they wait for the sweep's backstop.
MAX_WAITING_PER_KEY = 10_000
# How long `close` waits for the deliveries it woke to finish (each is bounded by the
# attempt's own timeout; this only keeps a stuck one from holding the shutdown).
CLOSE_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A delivery given back by a cap: whose, which, and its attempt count since (the
    hand-over's fence)."""

    client_id: str
    delivery_id: str
    attempts: int


# Claim the delivery and start sending it; the running send, or None if it was not there
# to take any more.
Wake = Callable[[Waiting], Awaitable[asyncio.Task[Any] | None]]
_Key = tuple[str, str]  # (channel name, cap key)


class CapacityWaiters:
    """One process's deliveries waiting for their channels' in-flight caps."""

    def __init__(
        self, channels: Mapping[str, object], wake: Wake, stopping: threading.Event
    ) -> None:
        self._wake = wake
        self._stopping = stopping
        self._caps: dict[str, InFlightCap] = {}
        self._listeners: dict[str, Callable[[str], None]] = {}
        for name, channel in channels.items():
            if isinstance(channel, Capped):
                self._caps[name] = channel.capacity
                self._listeners[name] = partial(self._released, name)
                channel.capacity.subscribe(self._listeners[name])
        self._queues: dict[_Key, OrderedDict[str, Waiting]] = {}
        self._waking: Counter[_Key] = Counter()
        self._running: set[asyncio.Task[Any]] = set()
        self._closed = False
        # Given back by this process while it stops: rung for the next worker at `close`.
        self._given_back: dict[str, Waiting] = {}

    def add(self, channel: str, key: str, entries: Iterable[Waiting]) -> None:
        """Remember deliveries the cap of (`channel`, `key`) refused, and wake as many as it
        has free slots now (a slot may have freed while the refusal was being written)."""
        queue = self._queues.setdefault((channel, key), OrderedDict())
        for entry in entries:
            if len(queue) >= MAX_WAITING_PER_KEY:
                break  # the rest wait for the sweep
            queue[entry.delivery_id] = entry
        self._pump((channel, key))

    def released_while_stopping(self, entries: Iterable[Waiting]) -> None:
        """Remember deliveries given back because this process is stopping, for `close`."""
        for entry in entries:
            self._given_back[entry.delivery_id] = entry

    def waiting(self) -> int:
        """How many deliveries wait in this process."""
        return sum(len(q) for q in self._queues.values())

    def _released(self, channel: str, key: str) -> None:
        self._pump((channel, key))

    def _pump(self, k: _Key) -> None:
        """Start a wake for each free slot of `k` not already promised to one."""
        if self._closed or self._stopping.is_set():
            return
        queue = self._queues.get(k)
        cap = self._caps.get(k[0])
        while queue and cap is not None and cap.free(k[1]) > self._waking[k]:
            _, entry = queue.popitem(last=False)
            self._waking[k] += 1
            task = asyncio.get_running_loop().create_task(self._wake_one(k, entry))
            self._track(task)
        if queue is not None and not queue:
            del self._queues[k]

    async def _wake_one(self, k: _Key, entry: Waiting) -> None:
        failed = False
        sending: asyncio.Task[Any] | None = None
        try:
            sending = await self._wake(entry)
        except Exception:
            # The database is away, say: keep its place and try again at the next release,
            # rather than running through (and dropping) the whole queue now.
            log.exception("waking a waiting delivery failed", extra={"id": entry.delivery_id})
            failed = True
        finally:
            self._waking[k] -= 1
            if self._waking[k] <= 0:
                del self._waking[k]
        if failed:
            queue = self._queues.setdefault(k, OrderedDict())
            queue[entry.delivery_id] = entry
            queue.move_to_end(entry.delivery_id, last=False)
        elif sending is not None:
            self._track(sending)
        else:
            self._pump(k)  # nothing taken: the slot is still free for the next one

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def close(self) -> tuple[list[Waiting], list[Waiting]]:
        """Wake nothing more, let the deliveries already woken finish; those still waiting
        and those given back while stopping (for the engine to hand over)."""
        self._closed = True
        for name, cap in self._caps.items():
            cap.unsubscribe(self._listeners[name])
        if self._running:
            await asyncio.wait(set(self._running), timeout=CLOSE_TIMEOUT_SECONDS)
        left = [entry for queue in self._queues.values() for entry in queue.values()]
        released = list(self._given_back.values())
        self._queues.clear()
        self._given_back.clear()
        return left, released
