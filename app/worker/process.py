"""`chatapi worker` and `chatapi beat`: Celery in its own process on the Redis broker."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

import sentry_sdk
from celery import signals
from prometheus_client import start_http_server

from app.core.config import Settings
from app.core.logging import configure_logging
from app.observability.sentry import init_sentry
from app.runtime import Runtime
from app.worker.celery_app import CONSUMED_QUEUES, configure_celery
from app.worker.runtime import BackgroundLoop, bind_runtime

log = logging.getLogger("chatapi.worker")
LIFECYCLE_TIMEOUT_SECONDS = 30.0
# Between a worker that stopped on its own and its replacement: a crash loop stays slow.
RESTART_DELAY_SECONDS = 2.0


def run_worker(
    settings: Settings, build: Callable[[], Runtime], *, concurrency: int, loglevel: str
) -> None:
    """Consume tasks with a thread pool sharing one event loop; blocks until shutdown.

    The runtime is made by `build` (the CLI's: the composition root for `settings`, what it
    validated) once logging and Celery are set up, started on the worker's own loop — its
    Redis bus and presence live — and bound to the Celery app for tasks.
    A worker that stops without being asked (Celery's "Unrecoverable error", e.g. kombu
    tripping over a Redis connection that went away) is replaced by a fresh process.
    """
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "worker")
    app = configure_celery(settings)
    asked_to_stop = threading.Event()
    loop = BackgroundLoop()
    runtime = build()
    if settings.WORKER_METRICS_PORT:
        _serve_metrics(runtime, settings.WORKER_METRICS_PORT)

    def shutting_down(**_: object) -> None:
        asked_to_stop.set()
        # From now on claimed deliveries are given back unspent instead of started, and
        # no slot wakes a waiting one; requests already in flight finish (warm shutdown).
        runtime.shutting_down.set()

    # Celery sends this from its SIGTERM/SIGINT/SIGQUIT handlers only, never on a crash.
    signals.worker_shutting_down.connect(shutting_down, weak=False)
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
    except SystemExit:
        if asked_to_stop.is_set():
            raise
    finally:
        # worker_main returns (or raises SystemExit) after a warm shutdown: no task runs now.
        bind_runtime(app, None)
        try:
            loop.call(runtime.stop(), LIFECYCLE_TIMEOUT_SECONDS)
            log.info("worker runtime stopped")
        except Exception:
            log.exception("worker runtime did not stop cleanly")
        loop.close()
    if not asked_to_stop.is_set():
        _replace_this_process()


def _replace_this_process() -> None:
    # The way a supervisor would restart it, without needing one: same pid, same arguments,
    # no state from the worker that failed. Nothing is lost meanwhile: unacknowledged
    # messages go back to the queue, and the database's sweep rings whatever is due.
    log.error(
        "celery worker stopped without being asked; starting a new one",
        extra={"delay_seconds": RESTART_DELAY_SECONDS},
    )
    sentry_sdk.flush(timeout=2)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(RESTART_DELAY_SECONDS)
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _serve_metrics(runtime: Runtime, port: int) -> None:
    # The worker has no HTTP API: its deliveries, retries and dead letters are scraped here
    # (or by the API's /metrics when both share PROMETHEUS_MULTIPROC_DIR on one host).
    start_http_server(port, registry=runtime.metrics)
    log.info("worker metrics on port %s", port)


def run_beat(settings: Settings, *, loglevel: str) -> None:
    """Run the beat scheduler; the schedule lives in code, so nothing is persisted."""
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    init_sentry(settings, "beat")
    app = configure_celery(settings)
    app.start(["beat", f"--loglevel={loglevel}", "--scheduler=celery.beat:Scheduler"])
