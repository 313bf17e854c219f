"""System tasks: the beat heartbeat."""

from __future__ import annotations

from app.system import service
from app.worker.celery_app import celery_app
from app.worker.runtime import RuntimeTask


@celery_app.task(name="system.heartbeat", bind=True)
def heartbeat(self: RuntimeTask) -> None:
    """Record that beat scheduled this and a worker ran it."""
    runtime = self.runtime
    runtime.run(service.record_heartbeat(runtime.db, "beat"))
