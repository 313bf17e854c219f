"""The periodic room sweep."""

from __future__ import annotations

from app.rooms.sweep import sweep_inactive_rooms
from app.worker.celery_app import celery_app
from app.worker.runtime import get_runtime


@celery_app.task(name="rooms.sweep_inactive")
def sweep_inactive() -> int:
    """Deactivate idle rooms; return how many."""
    runtime = get_runtime()
    report = runtime.run(
        sweep_inactive_rooms(
            runtime.db, runtime.bus, batch_size=runtime.settings.ROOM_SWEEP_BATCH_SIZE
        )
    )
    return report.deactivated
