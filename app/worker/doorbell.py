"""The doorbell that publishes through Celery (app/core/doorbell.py says what a ring is).

A request never waits on the broker: a ring only appends to this runtime's pending work,
and one background task per kind publishes everything pending in the broker's thread pool,
then looks again. A busy API therefore sends one message per batch rather than one per
send, and a slow broker makes batches larger instead of requests slower. A publish is
bounded (`PUBLISH_TIMEOUT_SECONDS`) and its failure only logged: the rows are the truth,
and the beat sweep rings whatever a lost message left behind.

The runtime holds one `CeleryDoorbell` (built by `build_runtime`) and rings from its own
event loop; `drain` at stop publishes what requests that already answered have rung.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from celery import Celery

from app.core.doorbell import INBOUND_BATCH, InboundPair
from app.core.executors import run_in
from app.worker.celery_app import DELIVERY_QUEUE, celery_app

log = logging.getLogger("chatapi.worker")

DELIVER_TASK = "notifications.deliver"
FLUSH_PARKED_TASK = "notifications.flush_parked"
PROCESS_EVENTS_TASK = "inbound.process_events"
# Delivery ids per task message: one claim query and one gather per message. A channel that
# sends in batches says how many of its deliveries one message carries (`batch_size`: e-mail
# 1,000, a Mailgun call's recipients), and a send rings its deliveries per channel.
RING_CHUNK = 100
# A publish stuck on an unreachable broker must not stall every later ring: past this the
# publisher moves on (the thread finishes or fails alone; the sweep re-rings).
PUBLISH_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")
# One Celery message: task name, positional arguments, queue (None: the default one).
Message = tuple[str, tuple[Any, ...], str | None]


class Coalescer(Generic[T]):
    """Items rung on one loop, and the one task publishing them: `add` only appends;
    `publish(batch)` gets everything pending since its previous call."""

    def __init__(self, publish: Callable[[list[T]], Awaitable[None]]) -> None:
        self._publish = publish
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, items: Sequence[T]) -> None:
        """Queue `items`; published soon, together with whatever else is waiting."""
        if not items:
            return
        self._pending.extend(items)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until every queued item was published (or its publish failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await self._publish(batch)


def delivery_messages(client_id: str, ids: Sequence[str], batch: int = RING_CHUNK) -> list[Message]:
    """The `deliver` messages for one tenant's ids, `batch` per message."""
    return [
        (DELIVER_TASK, (client_id, list(ids[i : i + batch])), DELIVERY_QUEUE)
        for i in range(0, len(ids), batch)
    ]


def inbound_messages(pairs: Sequence[InboundPair]) -> list[Message]:
    """The `process_events` messages for stored events, `INBOUND_BATCH` per message."""
    return [
        (PROCESS_EVENTS_TASK, ([list(p) for p in pairs[i : i + INBOUND_BATCH]],), None)
        for i in range(0, len(pairs), INBOUND_BATCH)
    ]


class CeleryDoorbell:
    """A `Doorbell` sending Celery messages from the broker's thread pool."""

    def __init__(self, celery: Celery, pool: Executor) -> None:
        self._celery = celery
        self._pool = pool
        # (client id, delivery id, ids per message)
        self._deliveries: Coalescer[tuple[str, str, int]] = Coalescer(self._publish_deliveries)
        self._inbound: Coalescer[InboundPair] = Coalescer(self._publish_inbound)

    async def ring_deliveries(
        self, client_id: str, delivery_ids: Sequence[str], *, batch: int | None = None
    ) -> None:
        """Queue a `deliver` ring for the ids, `batch` per message (default RING_CHUNK);
        published in the background."""
        size = max(1, batch or RING_CHUNK)
        self._deliveries.add([(client_id, i, size) for i in delivery_ids])

    async def ring_inbound(self, pairs: Sequence[InboundPair]) -> None:
        """Queue a `process_events` ring for stored events; published in the background."""
        self._inbound.add(pairs)

    async def drain(self) -> None:
        """Wait until every ring queued so far was published (or failed)."""
        await self._deliveries.drain()
        await self._inbound.drain()

    def send(self, messages: Sequence[Message]) -> None:
        """Publish `messages` (blocking: runs in the broker pool)."""
        # Nobody reads a doorbell's result. `send_task` does not consult task_ignore_result:
        # without ignore_result it subscribed to the result channel on Redis per message.
        for name, args, queue in messages:
            self._celery.send_task(name, args=args, queue=queue, ignore_result=True)

    async def _publish_deliveries(self, batch: list[tuple[str, str, int]]) -> None:
        by_client: dict[tuple[str, int], list[str]] = {}
        for client_id, delivery_id, size in batch:
            by_client.setdefault((client_id, size), []).append(delivery_id)
        for (client_id, size), ids in by_client.items():
            await self._send(
                delivery_messages(client_id, ids, size),
                "enqueueing deliveries failed; the sweep will ring them",
                {"client_id": client_id, "deliveries": len(ids)},
            )

    async def _publish_inbound(self, batch: list[InboundPair]) -> None:
        for message in inbound_messages(batch):
            await self._send(
                [message],
                "enqueueing inbound events failed; the sweep will ring them",
                {"events": len(message[1][0])},
            )

    async def _send(self, messages: list[Message], failed: str, extra: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(run_in(self._pool, self.send, messages), PUBLISH_TIMEOUT_SECONDS)
        except Exception:
            log.warning(failed, exc_info=True, extra=extra)


def celery_doorbell(pool: Executor) -> CeleryDoorbell:
    """The process's doorbell on the process's Celery app (configure_celery points it)."""
    return CeleryDoorbell(celery_app, pool)
