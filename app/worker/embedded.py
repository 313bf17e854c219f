"""The embedded default: a real Celery worker and beat inside the API process.

Its task threads use the API process's own runtime: they hand their coroutines to the API's
event loop (Runtime.run), so tasks share its engine, bus and presence with the sockets.
"""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService
from celery.worker import WorkController

from app.runtime import Runtime
from app.worker.celery_app import CONSUMED_QUEUES, celery_app
from app.worker.runtime import bind_runtime

log = logging.getLogger("chatapi.worker")
EMBEDDED_CONCURRENCY = 4


class EmbeddedWorker:
    """A Celery WorkController and beat service on threads, consuming the in-process broker."""

    def __init__(self, runtime: Runtime, *, with_beat: bool = True) -> None:
        self._runtime = runtime
        # WorkController (not app.Worker) because the latter installs signal handlers,
        # which only the main thread may do.
        self._worker = WorkController(
            app=celery_app,
            pool_cls="threads",
            concurrency=EMBEDDED_CONCURRENCY,
            queues=list(CONSUMED_QUEUES),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            hostname="embedded@chatapi",
        )
        self._thread = threading.Thread(
            target=self._worker.start, name="chatapi-embedded-worker", daemon=True
        )
        self._beat = (
            EmbeddedService(celery_app, thread=True, scheduler_cls="celery.beat:Scheduler")
            if with_beat
            else None
        )

    def start(self) -> None:
        """Bind the runtime, then start consuming (and scheduling) in background threads."""
        bind_runtime(celery_app, self._runtime)
        _purge_in_process_broker()
        self._thread.start()
        if self._beat is not None:
            self._beat.start()
        log.info("embedded celery worker started", extra={"beat": self._beat is not None})

    def stop(self) -> None:
        """Stop beat and the worker, waiting briefly for running tasks, then unbind.

        Blocking: call it off the runtime's loop (asyncio.to_thread), since running tasks
        may still need that loop to finish.
        """
        # Deliveries claimed from now on go back unspent rather than start (DESIGN.md §4).
        self._runtime.shutting_down.set()
        try:
            if self._beat is not None:
                self._beat.stop()
            self._worker.stop(in_sighandler=False, exitcode=0)
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                # It still consumes the process's in-memory queues: a later worker's rings
                # may reach it (the sweep recovers them, a lease later).
                log.error("embedded celery worker did not stop within 10 s")
        finally:
            bind_runtime(celery_app, None)


def _purge_in_process_broker() -> None:
    # kombu's memory broker lives as long as the process, not as long as the worker: what
    # an earlier app published (one run without a worker, or a stopped one) is still
    # queued, and a new worker would first work through rings meant for another database.
    # A fresh process starts empty; so does a fresh embedded worker. Nothing is lost by it:
    # the database is the truth, and the sweep rings again whatever is due.
    with celery_app.connection_for_write() as connection:
        if connection.transport.driver_type != "memory":
            return  # a shared broker's queues belong to every worker on it
        channel = connection.default_channel
        dropped = sum(channel.queue_purge(queue) or 0 for queue in CONSUMED_QUEUES)
    if dropped:
        log.info("dropped rings queued before this worker", extra={"messages": dropped})
