"""System tasks: the beat heartbeat and a probe that exercises retries with countdown."""

from __future__ import annotations

from celery import Task

from app.system import service
from app.worker.celery_app import celery_app
from app.worker.runtime import get_runtime

PROBE_MAX_RETRIES = 10


@celery_app.task(name="system.heartbeat")
def heartbeat() -> None:
    """Record that beat scheduled this and a worker ran it."""
    runtime = get_runtime()
    runtime.run(service.record_heartbeat(runtime.db, "beat"))


@celery_app.task(name="system.probe", bind=True, max_retries=PROBE_MAX_RETRIES)
def probe(self: Task, probe_id: str, countdown: float = 1.0) -> None:  # type: ignore[type-arg]
    """Fail until the probe's `fail_times` is used up, retrying after `countdown` seconds."""
    runtime = get_runtime()
    if not runtime.run(service.attempt_probe(runtime.db, probe_id)):
        raise self.retry(countdown=countdown)
