"""Ringing the doorbell: Celery messages that say "look at these delivery rows now".

The rows are the truth (DESIGN.md §1.1): a message lost here only delays work until the
beat sweep rings again, so a failed enqueue is logged, never raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from app.worker.celery_app import DELIVERY_QUEUE, celery_app

log = logging.getLogger("chatapi.notifications")

DELIVER_TASK = "notifications.deliver"
FLUSH_PARKED_TASK = "notifications.flush_parked"
# Delivery ids per task message: one claim query and one gather per message.
RING_CHUNK = 100


def ring(client_id: str, delivery_ids: Sequence[str], chunk: int = RING_CHUNK) -> int:
    """Enqueue `deliver` for the ids, `chunk` per message (blocking: call off the loop)."""
    messages = 0
    for start in range(0, len(delivery_ids), chunk):
        celery_app.send_task(
            DELIVER_TASK,
            args=(client_id, list(delivery_ids[start : start + chunk])),
            queue=DELIVERY_QUEUE,
        )
        messages += 1
    return messages


async def ring_soon(client_id: str, delivery_ids: Sequence[str]) -> None:
    """`ring` from async code, after the rows were committed; failures are only logged."""
    if not delivery_ids:
        return
    try:
        await asyncio.to_thread(ring, client_id, delivery_ids)
    except Exception:
        log.warning(
            "enqueueing deliveries failed; the sweep will ring them",
            exc_info=True,
            extra={"client_id": client_id, "deliveries": len(delivery_ids)},
        )


async def ring_flush(client_id: str, user_id: str) -> None:
    """Ask a worker to deliver the user's parked websocket notifications."""
    try:
        await asyncio.to_thread(
            celery_app.send_task,
            FLUSH_PARKED_TASK,
            args=(client_id, user_id),
            queue=DELIVERY_QUEUE,
        )
    except Exception:
        log.warning("enqueueing a parked flush failed", exc_info=True)
