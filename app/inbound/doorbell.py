"""Doorbells for stored inbound events, coalesced.

The event row is the truth (DESIGN.md §1.1): the Celery message only says "look now", and
the beat sweep re-rings anything a lost message left behind. So the request does not wait
for the broker: it hands the event to this process's bell and answers. The bell publishes
from one background task at a time; events stored while a publish is in flight go out
together in the next message (`inbound.process_events`, up to BATCH events), so under load
the broker sees one message per batch instead of one per request, and at rest a single
event is published at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence

from app.core import executors

log = logging.getLogger("chatapi.inbound")

PROCESS_EVENTS_TASK = "inbound.process_events"
#: Events per task message (the worker processes one message's events one after another).
BATCH = 50

Pair = tuple[str, str]  # (client_id, event_id)


def publish(pairs: Sequence[Pair]) -> None:
    """One `inbound.process_events` message for `pairs` (blocking: call off the loop)."""
    from app.worker.celery_app import celery_app

    celery_app.send_task(PROCESS_EVENTS_TASK, args=([list(p) for p in pairs],))


class Bell:
    """Pending doorbells of one event loop and the task publishing them."""

    def __init__(self, send: Callable[[Sequence[Pair]], None] = publish) -> None:
        self._send = send
        self._pending: list[Pair] = []
        self._task: asyncio.Task[None] | None = None

    def ring(self, client_id: str, event_id: str) -> None:
        """Queue a doorbell; published soon, together with whatever else is waiting."""
        self._pending.append((client_id, event_id))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def drain(self) -> None:
        """Wait until every queued doorbell was published (or its publish failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            try:
                # The broker pool: a stalled broker holds its own threads, nobody else's.
                await executors.run_in(executors.current().broker, self._send, batch)
            except Exception:
                log.warning(
                    "enqueueing inbound events failed; the sweep will ring them",
                    exc_info=True,
                    extra={"events": len(batch)},
                )


_bells: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Bell] = weakref.WeakKeyDictionary()


def bell() -> Bell:
    """The running event loop's bell."""
    loop = asyncio.get_running_loop()
    found = _bells.get(loop)
    if found is None:
        found = _bells[loop] = Bell()
    return found
