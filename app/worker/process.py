"""`chatapi worker` and `chatapi beat`: Celery in its own process on the Redis broker."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_shutdown, worker_shutdown

from app.core.config import Settings
from app.core.logging import configure_logging
from app.observability.sentry import init_sentry
from app.worker.celery_app import DEFAULT_QUEUE, configure_celery
from app.worker.runtime import start_runtime, stop_runtime


def run_worker(settings: Settings, *, concurrency: int, loglevel: str) -> None:
    """Consume tasks with a thread pool sharing one event loop; blocks until shutdown."""
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "worker")
    app = configure_celery(settings)
    start_runtime(settings)
    app.worker_main(
        [
            "worker",
            f"--loglevel={loglevel}",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--queues={DEFAULT_QUEUE}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def run_beat(settings: Settings, *, loglevel: str) -> None:
    """Run the beat scheduler; the schedule lives in code, so nothing is persisted."""
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "beat")
    app = configure_celery(settings)
    app.start(["beat", f"--loglevel={loglevel}", "--scheduler=celery.beat:Scheduler"])


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    stop_runtime()
