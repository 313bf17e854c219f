"""Child processes for tests: `chatapi serve|worker|beat` with their output kept for failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ChildProcess:
    """A running `chatapi` command whose combined output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.args = args
        self.base = ""
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> None:
        """Terminate (then kill) the process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def chatapi_process(
    args: list[str], env: dict[str, str], cwd: Path, name: str
) -> Iterator[ChildProcess]:
    """Run `chatapi ARGS` for the duration of the block."""
    child = ChildProcess(args, env, cwd, cwd / f"{name}.log")
    try:
        yield child
    finally:
        child.stop()


@contextmanager
def serve_process(env: dict[str, str], cwd: Path, name: str = "serve") -> Iterator[ChildProcess]:
    """`chatapi serve` on a free port, ready; the child's `base` is its URL."""
    port = free_port()
    with chatapi_process(["serve", "--port", str(port)], env, cwd, name) as child:
        child.base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if child.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{child.output()}")
            try:
                return httpx.get(f"{child.base}/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, f"{name} to be ready")
        yield child


@contextmanager
def running_server(env: dict[str, str], cwd: Path, name: str = "serve") -> Iterator[str]:
    """`chatapi serve` on a free port; yields its base URL once /health/ready answers 200."""
    with serve_process(env, cwd, name) as child:
        yield child.base
