"""Logs for people on a terminal, JSON for machines everywhere else (LOG_FORMAT=auto)."""

from __future__ import annotations

import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
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


# Celery's own lines for each scheduled or run task: routine, so DEBUG (issue 23: INFO is for
# requests, deliveries that end badly, state changes and sweeps that did something).
CELERY_ROUTINE = re.compile(r"Sending due task|\] received|\] succeeded in")


def _heartbeats(db: Path) -> int:
    # The heartbeat task runs on beat's schedule: its count proves ticks went by.
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT count FROM heartbeats WHERE name = 'beat'").fetchone()
    except sqlite3.OperationalError:
        return 0  # not migrated yet
    return int(row[0]) if row else 0


def test_info_logs_requests_but_not_celerys_routine_chatter(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{db}",
        LOG_LEVEL="INFO",
        LOG_FORMAT="json",
        HEARTBEAT_INTERVAL_SECONDS=0.5,
        DELIVERY_SWEEP_INTERVAL_SECONDS=0.5,
        ROOM_SWEEP_INTERVAL_SECONDS=1,
    )
    probe = "log-noise-probe"
    with serve_process(child_env(settings), tmp_path) as child:
        live = httpx.get(f"{child.base}/health/live", headers={"X-Request-ID": probe})
        assert live.status_code == 200
        deadline = time.monotonic() + 60
        # The request's line is written just after its response: wait for it too.
        while _heartbeats(db) < 3 or probe not in child.output():
            assert time.monotonic() < deadline, child.output()
            time.sleep(0.2)
        output = child.output()
    records = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    [request] = [r for r in records if r.get("request_id") == probe]
    assert request["msg"] == "request" and request["path"] == "/health/live"
    assert request["level"] == "info"
    routine = [r for r in records if CELERY_ROUTINE.search(r["msg"])]
    assert routine == [], "Celery's per-task lines at INFO"
    assert not [r for r in records if "No hostname was supplied" in r["msg"]]
    # What is left from Celery is its start-up, not one line per tick.
    celery = [r for r in records if r["logger"].startswith(("celery", "kombu"))]
    assert len(celery) <= 3, "\n".join(f"{r['logger']}: {r['msg']}" for r in celery)
