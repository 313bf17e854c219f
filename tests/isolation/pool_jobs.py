"""Jobs the limited-pool tests run in its child processes (imported there by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def echo(*args: Any) -> list[Any]:
    """Its arguments back, with the pid that ran it last."""
    return [*args, os.getpid()]


def spin(pid_file: str) -> None:
    """Burn CPU forever in pure Python (after saying which process does)."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        pass


def spin_in_c(pid_file: str) -> int:
    """Burn CPU in one long C call, which no Python signal handler interrupts."""
    Path(pid_file).write_text(str(os.getpid()))
    return sum(range(10**13))


def hog(pid_file: str, megabytes: int) -> int:
    """Hold `megabytes` of memory, a megabyte at a time."""
    Path(pid_file).write_text(str(os.getpid()))
    held = [bytearray(1 << 20) for _ in range(megabytes)]
    return len(held)


def crash(code: int) -> None:
    """Exit at once, without answering."""
    os._exit(code)


def fail(message: str) -> None:
    """Raise an ordinary exception."""
    raise ValueError(message)


def sleep_then_echo(seconds: float, value: Any) -> list[Any]:
    """Sleep (not CPU), then echo."""
    time.sleep(seconds)
    return echo(value)
