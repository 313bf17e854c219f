"""Ringing the doorbell: Celery messages that say "look at these delivery rows now".

The rows are the truth (DESIGN.md §1.1): a message lost here only delays work until the
beat sweep rings again, so a failed enqueue is logged, never raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence

from app.core import executors
from app.worker.celery_app import DELIVERY_QUEUE, celery_app

log = logging.getLogger("chatapi.notifications")

DELIVER_TASK = "notifications.deliver"
FLUSH_PARKED_TASK = "notifications.flush_parked"
# Delivery ids per task message: one claim query and one gather per message.
RING_CHUNK = 100
# A publish stuck on an unreachable broker must not stall every later ring of this loop:
# past this the batcher moves on (the thread finishes or fails alone; the sweep re-rings).
RING_TIMEOUT_SECONDS = 5.0
# Nobody reads a doorbell's result. `send_task` does not consult task_ignore_result: without
# this it subscribed to the result channel on Redis for every message (a round trip and a
# pubsub registration, then an unsubscribe when the AsyncResult was collected).
NO_RESULT = True


def ring(client_id: str, delivery_ids: Sequence[str], chunk: int = RING_CHUNK) -> int:
    """Enqueue `deliver` for the ids, `chunk` per message (blocking: call off the loop)."""
    messages = 0
    for start in range(0, len(delivery_ids), chunk):
        celery_app.send_task(
            DELIVER_TASK,
            args=(client_id, list(delivery_ids[start : start + chunk])),
            queue=DELIVERY_QUEUE,
            ignore_result=NO_RESULT,
        )
        messages += 1
    return messages


class _Batcher:
    """Ids waiting to be rung on one event loop, and the one task publishing them.

    `add` only appends; the publishing task takes everything pending, publishes it in a
    thread (`ring`: `RING_CHUNK` ids per message, so a busy API sends one message per
    hundred sends rather than one per send), then looks again. A request therefore never
    waits on the broker, and a slow broker makes batches larger instead of requests slower.
    """

    def __init__(self) -> None:
        self.pending: dict[str, list[str]] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, client_id: str, delivery_ids: Sequence[str]) -> None:
        self.pending.setdefault(client_id, []).extend(delivery_ids)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, {}
            for client_id, ids in batch.items():
                try:
                    await asyncio.wait_for(
                        executors.run_in(executors.current().broker, ring, client_id, ids),
                        RING_TIMEOUT_SECONDS,
                    )
                except Exception:
                    log.warning(
                        "enqueueing deliveries failed; the sweep will ring them",
                        exc_info=True,
                        extra={"client_id": client_id, "deliveries": len(ids)},
                    )


# One batcher per event loop (the API's, a worker's): tasks belong to their loop.
_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = (
    weakref.WeakKeyDictionary()
)


async def ring_soon(client_id: str, delivery_ids: Sequence[str]) -> None:
    """`ring` from async code, after the rows were committed, without waiting for the broker:
    the ids join the next batch published in the background; failures are only logged."""
    if not delivery_ids:
        return
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _Batcher()
    batcher.add(client_id, delivery_ids)


async def drain() -> None:
    """Wait until every id rung on this loop so far has been published (or failed): call
    before the process stops, so a graceful shutdown loses no doorbell."""
    batcher = _batchers.get(asyncio.get_running_loop())
    while batcher is not None and batcher.task is not None and not batcher.task.done():
        await asyncio.shield(batcher.task)


async def ring_flush(client_id: str, user_id: str) -> None:
    """Ask a worker to deliver the user's parked websocket notifications."""
    try:
        await executors.run_in(
            executors.current().broker,
            celery_app.send_task,
            FLUSH_PARKED_TASK,
            args=(client_id, user_id),
            queue=DELIVERY_QUEUE,
            ignore_result=NO_RESULT,
        )
    except Exception:
        log.warning("enqueueing a parked flush failed", exc_info=True)
