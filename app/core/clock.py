"""The one place the service reads the time.

Code calls `utcnow()` (timezone-aware UTC) or `monotonic()`; both read the process's
installed clock, which is the system clock unless a test installs a `ManualClock` and
moves it. The clock is a runtime part (`Runtime.clock`): `build_runtime(..., clock=...)`
takes one and `Runtime.start()` installs it, so the call sites need no runtime at hand. Expiry, sweeps and retry schedules are then tested without wall-clock sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """A source of time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(timezone.utc)
        self._monotonic = 1_000_000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both readings forward by `seconds`."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds


_clock: Clock = SystemClock()


def installed_clock() -> Clock:
    """The process's clock now (the one `utcnow()` and `monotonic()` read)."""
    return _clock


def install_clock(clock: Clock) -> Clock:
    """Make `clock` the process's clock; return the one it replaces."""
    global _clock
    previous, _clock = _clock, clock
    return previous


@contextmanager
def using_clock(clock: Clock) -> Iterator[Clock]:
    """Install `clock` for the duration of a block (tests)."""
    previous = install_clock(clock)
    try:
        yield clock
    finally:
        install_clock(previous)


def utcnow() -> datetime:
    """Now, in UTC, from the installed clock."""
    return _clock.now()


def monotonic() -> float:
    """Monotonic seconds from the installed clock."""
    return _clock.monotonic()
