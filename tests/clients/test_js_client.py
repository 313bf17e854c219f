"""The TypeScript client's own suite (`clients/js`, Node's test runner) on real servers.

`npm ci && npm run build && node --test` runs in clients/js with the environment of a
`chatapi serve` on this run's PostgreSQL database and Redis (a key prefix of its own): the
Node tests spawn `chatapi serve` (and `chatapi worker`) themselves from CHATAPI_BIN, this
virtualenv's entry point. Without Node the test skips, except under CI=true where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import child_env, make_settings

pytestmark = pytest.mark.slow

JS_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (Node 18+ runs the TypeScript client's tests)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _run(args: list[str], env: dict[str, str], timeout: float) -> None:
    done = subprocess.run(
        args, cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` failed ({done.returncode}) in clients/js:\n"
            f"{done.stdout[-20000:]}\n{done.stderr[-8000:]}"
        )


def test_typescript_client_suite(pg_url: str, redis_server_url: str, redis_prefix: str) -> None:
    npm, node = _tool("npm"), _tool("node")
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=redis_prefix + "js:",
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        DELIVERY_SWEEP_INTERVAL_SECONDS=0.5,
    )
    env = child_env(settings)
    env["CHATAPI_BIN"] = str(Path(sys.executable).with_name("chatapi"))
    _run([npm, "ci", "--no-audit", "--no-fund"], env, 300)
    _run([npm, "run", "build"], env, 120)
    _run([node, "--test", "--test-concurrency=4", "test/"], env, 300)
