"""The periodic room sweep."""

from __future__ import annotations

from app.rooms.sweep import sweep_inactive_rooms
from app.worker.celery_app import celery_app
from app.worker.runtime import RuntimeTask


@celery_app.task(name="rooms.sweep_inactive", bind=True)
def sweep_inactive(self: RuntimeTask) -> int:
    """Deactivate idle rooms; return how many."""
    runtime = self.runtime
    report = runtime.run(
        sweep_inactive_rooms(
            runtime.db, runtime.bus, batch_size=runtime.settings.ROOM_SWEEP_BATCH_SIZE
        )
    )
    return report.deactivated
