"""`chatapi serve` on a fresh folder: the embedded default is ready quickly with no servers."""

from __future__ import annotations

import os
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
