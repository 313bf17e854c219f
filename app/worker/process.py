"""`chatapi worker` and `chatapi beat`: Celery in its own process on the Redis broker."""

from __future__ import annotations

import logging

from app.core.config import Settings
from app.core.logging import configure_logging
from app.observability.sentry import init_sentry
from app.runtime import build_runtime
from app.worker.celery_app import CONSUMED_QUEUES, configure_celery
from app.worker.runtime import BackgroundLoop, bind_runtime

log = logging.getLogger("chatapi.worker")
LIFECYCLE_TIMEOUT_SECONDS = 30.0


def run_worker(settings: Settings, *, concurrency: int, loglevel: str) -> None:
    """Consume tasks with a thread pool sharing one event loop; blocks until shutdown.

    The runtime is built from `settings` (what the CLI validated), started on the worker's
    own loop — its Redis bus and presence live — and bound to the Celery app for tasks.
    """
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "worker")
    app = configure_celery(settings)
    if settings.WORKER_METRICS_PORT:
        _serve_metrics(settings.WORKER_METRICS_PORT)
    loop = BackgroundLoop()
    runtime = build_runtime(settings, role="worker")
    try:
        loop.call(runtime.start(), LIFECYCLE_TIMEOUT_SECONDS)
        bind_runtime(app, runtime)
        app.worker_main(
            [
                "worker",
                f"--loglevel={loglevel}",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--queues={','.join(CONSUMED_QUEUES)}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        # worker_main returns (or raises SystemExit) after a warm shutdown: no task runs now.
        bind_runtime(app, None)
        try:
            loop.call(runtime.stop(), LIFECYCLE_TIMEOUT_SECONDS)
            log.info("worker runtime stopped")
        except Exception:
            log.exception("worker runtime did not stop cleanly")
        loop.close()


def _serve_metrics(port: int) -> None:
    # The worker has no HTTP API: its deliveries, retries and dead letters are scraped here
    # (or by the API's /metrics when both share PROMETHEUS_MULTIPROC_DIR on one host).
    from prometheus_client import REGISTRY, start_http_server

    from app.observability.metrics import multiproc_registry

    start_http_server(port, registry=multiproc_registry() or REGISTRY)
    log.info("worker metrics on port %s", port)


def run_beat(settings: Settings, *, loglevel: str) -> None:
    """Run the beat scheduler; the schedule lives in code, so nothing is persisted."""
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "beat")
    app = configure_celery(settings)
    app.start(["beat", f"--loglevel={loglevel}", "--scheduler=celery.beat:Scheduler"])
