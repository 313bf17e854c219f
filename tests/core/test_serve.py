"""`chatapi serve` on a fresh folder: the embedded default is ready quickly with no servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import chatapi_process, free_port, wait_until


@pytest.mark.slow
def test_serve_on_the_embedded_default_is_ready_within_10_seconds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    port = free_port()
    started = time.monotonic()
    with chatapi_process(["serve", "--port", str(port)], env, tmp_path, "serve") as child:

        def ready() -> bool:
            assert child.proc.poll() is None, child.output()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 10, "the embedded server to be ready")
        elapsed = time.monotonic() - started
    assert (tmp_path / "chatapi.db").exists(), "the default SQLite file is made in the cwd"
    assert elapsed < 10


def test_a_port_in_use_is_one_clear_line_before_anything_starts(tmp_path: Path) -> None:
    # Another program holds the port: serve must say so and stop before it migrates the
    # database or starts its embedded worker (it used to do both, then die in uvicorn).
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0], lines[0]
    assert "--port" in lines[0]  # the way out
    assert "Traceback" not in done.stderr + done.stdout
    # Nothing ran: no database made or migrated, no worker started.
    assert not (tmp_path / "chatapi.db").exists()
    assert "celery" not in (done.stdout + done.stderr).lower()


def test_a_host_that_is_no_local_address_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--host", "192.0.2.1", "--port", "8000"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "192.0.2.1:8000" in lines[0], done.stderr
    assert not (tmp_path / "chatapi.db").exists()
