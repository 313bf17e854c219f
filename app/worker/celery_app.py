"""The Celery app: Redis broker when REDIS_URL is set, an in-process broker otherwise."""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery

from app.core.config import Settings
from app.worker.runtime import RuntimeTask
from app.worker.schedule import beat_schedule

# Task modules are listed here so every process (API, worker, beat) registers the same tasks.
TASK_MODULES = [
    "app.system.tasks",
    "app.rooms.tasks",
    "app.notifications.tasks",
    "app.inbound.tasks",
    "app.analytics.tasks",
]
DEFAULT_QUEUE = "chatapi"
# Deliveries have their own queue: a burst of fan-out work never delays the sweeps.
DELIVERY_QUEUE = "deliveries"
CONSUMED_QUEUES = (DEFAULT_QUEUE, DELIVERY_QUEUE)

# Every task is a RuntimeTask: `self.runtime` is the runtime its process bound.
celery_app = Celery("chatapi", include=TASK_MODULES, task_cls=RuntimeTask)


def configure_celery(settings: Settings) -> Celery:
    """Point the Celery app at this configuration's broker and schedule."""
    # Extra task modules register on import, in every process that configures Celery.
    for module in settings.EXTRA_TASK_MODULES:
        importlib.import_module(module)
    conf: dict[str, Any] = {
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {
            "notifications.deliver": {"queue": DELIVERY_QUEUE},
            "notifications.flush_parked": {"queue": DELIVERY_QUEUE},
        },
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
        "beat_max_loop_interval": 1,
    }
    if settings.REDIS_URL:
        prefix = f"{settings.REDIS_KEY_PREFIX}celery:"
        conf |= {
            "broker_url": settings.REDIS_URL,
            "broker_transport": None,
            "result_backend": settings.REDIS_URL,
            # Long countdowns must not be redelivered by the visibility timeout; sweeps
            # re-ring anything due anyway, so the database stays the truth.
            "broker_transport_options": {
                "global_keyprefix": prefix,
                "visibility_timeout": 4 * 3600,
            },
            "result_backend_transport_options": {"global_keyprefix": prefix},
        }
    else:
        conf |= {
            # A host in the URL: without one kombu warns "No hostname was supplied" on
            # every connection, though an in-process broker has no host to supply.
            "broker_url": "memory://localhost/",
            # kombu's in-memory transport, woken by a publish instead of polling 20 times a
            # second inside the API process (app/worker/memory_broker.py).
            "broker_transport": "app.worker.memory_broker:Transport",
            "result_backend": "cache+memory://",
            "broker_transport_options": {},
        }
    _drop_cached_connections()
    celery_app.conf.update(conf)
    # Pool threads read the thread-local current app; without this a retry from a task
    # thread publishes through Celery's fallback app to its default amqp:// broker.
    celery_app.set_default()
    return celery_app


def _drop_cached_connections() -> None:
    # Celery caches its producer pool at first use; a process that is reconfigured (the
    # test suite switching between embedded and Redis mode) must not keep publishing to
    # the old broker. Celery offers no public reset, hence the private attributes.
    # Not closed: kombu's global producer registry may still hand the same pool back for
    # an equal broker URL.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
