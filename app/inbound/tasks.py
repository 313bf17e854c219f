"""Celery tasks of inbound webhooks: process one event, and the sweep that re-rings."""

from __future__ import annotations

import logging

from app.core.doorbell import InboundPair
from app.inbound import processing
from app.runtime import Runtime
from app.worker.celery_app import celery_app
from app.worker.doorbell import PROCESS_EVENTS_TASK
from app.worker.runtime import RuntimeTask

log = logging.getLogger("chatapi.inbound")


@celery_app.task(name="inbound.process_event", bind=True)
def process_inbound_event(self: RuntimeTask, client_id: str, event_id: str) -> str:
    """Claim and process one inbound event; a retry is the row due later, which the sweep
    rings then (no delayed message: the broker holds nothing the database does not)."""
    result = self.runtime.run(processing.process(self.runtime, client_id, event_id))
    return result.status


@celery_app.task(name=PROCESS_EVENTS_TASK, bind=True)
def process_inbound_events(self: RuntimeTask, pairs: list[list[str]]) -> list[str]:
    """The coalesced doorbell (app/worker/doorbell.py): each (client_id, event_id) in turn,
    each its own bounded runtime call, exactly as `inbound.process_event`."""
    statuses = []
    for client_id, event_id in pairs:
        try:
            statuses.append(process_inbound_event(client_id, event_id))
        except Exception:
            # One event's failure (e.g. a runtime timeout) must not hold back the others;
            # its row keeps its lease or retry time, so the sweep rings it again.
            log.exception("inbound event processing failed", extra={"event_id": event_id})
            statuses.append("error")
    return statuses


@celery_app.task(name="inbound.sweep_events", bind=True)
def sweep_inbound_events(self: RuntimeTask) -> int:
    """Ring for every due event (retries included) and expired lease, one coalesced
    `inbound.process_events` message per batch (a lost doorbell only delays work)."""
    batches = self.runtime.run(processing.due_for_sweep(self.runtime))
    self.runtime.run(_ring(self.runtime, batches))
    events = sum(len(b) for b in batches)
    if events:
        # One line for a sweep that rang something; the idle ones (every 5 s) none.
        log.info("inbound sweep", extra={"events": events, "messages": len(batches)})
    return events


async def _ring(rt: Runtime, batches: list[list[InboundPair]]) -> None:
    # Through the runtime's doorbell (one message per batch), published before returning.
    for batch in batches:
        await rt.doorbell.ring_inbound(batch)
    await rt.doorbell.drain()
