"""The relay's Celery tasks: thin wrappers that run the delivery code on the runtime's loop."""

from __future__ import annotations

from app.notifications import delivery, sweep
from app.worker.celery_app import celery_app
from app.worker.doorbell import DELIVER_TASK, FLUSH_PARKED_TASK
from app.worker.runtime import RuntimeTask


@celery_app.task(
    name=DELIVER_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
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
    """Deliver a user's parked websocket notifications (the user connected)."""
    runtime = self.runtime
    return runtime.run(delivery.flush_parked(runtime, client_id, user_id))


@celery_app.task(name="notifications.sweep_due", bind=True)
def sweep_due(self: RuntimeTask) -> int:
    """Ring due deliveries and expired leases; expire old parked ones. How many rung."""
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
