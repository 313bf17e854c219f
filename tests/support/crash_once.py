"""Test-only: the first `chatapi worker` importing this crashes as its consumer starts.

Celery reports it as an "Unrecoverable error" and stops, as it does when kombu trips over
a Redis connection that went away. The marker file named by CRASH_MARKER_ENV records the
crash, so the worker that replaces it runs normally. Registered in a child through
`EXTRA_TASK_MODULES` (see `with_crash_once`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import bootsteps

from app.worker.celery_app import celery_app

CRASH_MARKER_ENV = "CHATAPI_TEST_CRASH_MARKER"


def with_crash_once(env: dict[str, str], marker: Path) -> dict[str, str]:
    """`env` (already registering test tasks) for a worker that crashes once."""
    modules = ",".join(filter(None, [env.get("EXTRA_TASK_MODULES"), __name__]))
    return env | {"EXTRA_TASK_MODULES": modules, CRASH_MARKER_ENV: str(marker)}


class CrashOnce(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step that fails the first time any process starts it."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        marker = Path(os.environ[CRASH_MARKER_ENV])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            raise RuntimeError("crash-once: the consumer failed as it started")


# Only in the child that asked for it: the suite's own process imports this module (for
# `with_crash_once`) and its embedded workers must not crash.
if CRASH_MARKER_ENV in os.environ:
    celery_app.steps["consumer"].add(CrashOnce)
