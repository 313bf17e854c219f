"""The relay's Celery tasks: thin wrappers that run the delivery code on the runtime's loop."""

from __future__ import annotations

from app.notifications import delivery, sweep
from app.notifications.push import InAppPush
from app.worker.celery_app import celery_app
from app.worker.doorbell import DELIVER_TASK, FLUSH_PARKED_TASK
from app.worker.runtime import RuntimeTask

# A ring whose claim failed (the database restarting, a lock timeout, a stopping runtime) is
# rung again within seconds, not left to the sweep's lease rule (a lease of waiting). Ringing
# twice is harmless: a claim takes only what is due and not leased.
RING_RETRIES = 5
RING_RETRY_BACKOFF_MAX_SECONDS = 30


@celery_app.task(
    name=DELIVER_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    max_retries=RING_RETRIES,
    retry_backoff=1,
    retry_backoff_max=RING_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
)
def deliver(self: RuntimeTask, client_id: str, delivery_ids: list[str]) -> int:
    """Claim and deliver what is due among `delivery_ids`; how many were claimed."""
    runtime = self.runtime
    return runtime.run(delivery.deliver_batch(runtime, client_id, delivery_ids))


@celery_app.task(
    name=FLUSH_PARKED_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def flush_parked(self: RuntimeTask, client_id: str, user_id: str) -> int:
    """Push a user's owed in-app notifications (the user connected). Kept for messages
    queued by an older version: API processes now push on connect themselves."""
    runtime = self.runtime
    return runtime.run(runtime.part(InAppPush).on_connect(client_id, user_id))


@celery_app.task(name="notifications.sweep_due", bind=True)
def sweep_due(self: RuntimeTask) -> int:
    """Ring due deliveries and expired leases; push owed in-app pushes. How many rung."""
    runtime = self.runtime
    report = runtime.run(sweep.sweep_due(runtime))
    return report.due + report.expired_leases


@celery_app.task(name="notifications.purge", bind=True)
def purge(self: RuntimeTask) -> int:
    """Retention: old attempts and expired idempotency records. How many rows deleted."""
    runtime = self.runtime
    attempts, records = runtime.run(sweep.purge(runtime))
    return attempts + records


@celery_app.task(name="notifications.purge_inbox", bind=True)
def purge_inbox(self: RuntimeTask) -> int:
    """Retention: inbox items older than INBOX_RETENTION_DAYS. How many deleted."""
    runtime = self.runtime
    return runtime.run(sweep.purge_inbox(runtime))
