"""The analytics beat task: keep the hourly rollups up to date."""

from __future__ import annotations

from app.analytics import rollup
from app.worker.celery_app import celery_app
from app.worker.runtime import RuntimeTask


@celery_app.task(name="analytics.roll_up", bind=True)
def roll_up(self: RuntimeTask) -> int:
    """Roll up closed hours and re-roll changed ones; how many changed hours."""
    runtime = self.runtime
    return runtime.run(rollup.roll_up(runtime.db)).dirty_hours
