"""prometheus-client's multiprocess mode for `chatapi serve` and `chatapi worker`.

Must run before prometheus-client is first imported: the library picks its value storage
(memory-mapped files in PROMETHEUS_MULTIPROC_DIR, or process memory) at import time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def ensure_multiproc_dir() -> str:
    """Use the operator's PROMETHEUS_MULTIPROC_DIR, or a fresh temporary directory (a new
    one per start, so a restart does not add up counters of processes long gone)."""
    path = os.environ.get(ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="chatapi-metrics-")
        os.environ[ENV] = path
        # Ours, so ours to remove when this (parent) process ends; children inherit the
        # variable, not the hook. A kill -9 leaves it behind in the temp folder.
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


def mark_process_dead() -> None:
    """Drop this process's live gauges from the shared directory (on shutdown)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
