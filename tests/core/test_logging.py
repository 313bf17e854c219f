"""Logs for people on a terminal, JSON for machines everywhere else (LOG_FORMAT=auto)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import child_env, make_settings
from tests.support.processes import free_port, serve_process

STARTED = "chatapi started"
READABLE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +chatapi +chatapi started"
    r" .*\bembedded=True\b.*\bdatabase=sqlite\b"
)

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'log.db'}", LOG_LEVEL="INFO")
    env = child_env(settings)
    env.pop("LOG_FORMAT", None)  # the default, as a person starting `chatapi serve` has it
    return env | overrides


def _serve_on_a_terminal(env: dict[str, str], cwd: Path, timeout: float = 30) -> list[str]:
    """Run `chatapi serve` with a pseudo-terminal as stdout and stderr; its lines up to start."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while STARTED.encode() not in out:
            assert time.monotonic() < deadline, f"serve did not start:\n{out.decode()}"
            assert proc.poll() is None, f"serve exited:\n{out.decode()}"
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                out += os.read(master, 65536)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)
    return [line for line in out.decode(errors="replace").splitlines() if line.strip()]


def test_serve_on_a_terminal_logs_readable_lines(tmp_path: Path) -> None:
    lines = _serve_on_a_terminal(_env(tmp_path), tmp_path)
    started = [line for line in lines if STARTED in line]
    assert started and READABLE.match(started[0]), started
    assert not any(line.startswith("{") for line in lines), lines


def test_serve_on_a_terminal_logs_json_when_asked(tmp_path: Path) -> None:
    lines = _serve_on_a_terminal(_env(tmp_path, LOG_FORMAT="json"), tmp_path)
    records = [orjson.loads(line) for line in lines]
    assert any(r["msg"] == STARTED and r["embedded"] is True for r in records)


def test_serve_logs_json_lines_when_piped(tmp_path: Path) -> None:
    with serve_process(_env(tmp_path), tmp_path) as child:
        deadline = time.monotonic() + 30
        while STARTED not in child.output():
            assert time.monotonic() < deadline, child.output()
            time.sleep(0.05)
        output = child.output()
    records = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    started = [r for r in records if r["msg"] == STARTED]
    assert started and started[0]["level"] == "info" and started[0]["embedded"] is True
