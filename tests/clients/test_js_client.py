"""The TypeScript client's own suite, and examples/browser-chat (the demo on the client).

The first test: the TypeScript client's own suite (`clients/js`, Node's test runner) on real servers.

`npm ci && npm run build && node --test` runs in clients/js with the environment of a
`chatapi serve` on this run's PostgreSQL database and Redis (a key prefix of its own): the
Node tests spawn `chatapi serve` (and `chatapi worker`) themselves from CHATAPI_BIN, this
virtualenv's entry point. Without Node the test skips, except under CI=true where it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright

from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.demo.test_browser_chat import CHROMIUM_FLAGS, DemoServer, _conversation, chromium
from tests.support.api import bearer
from tests.support.processes import serve_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "clients" / "js"
EXAMPLE_DIR = ROOT / "examples" / "browser-chat"
__all__ = ["chromium"]  # the demo test's fixture: Debian's Chromium, else skip (fail in CI)


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


def test_browser_chat_example_on_the_client(chromium: str, tmp_path: Path) -> None:
    """examples/browser-chat (the demo page rewritten on @chatapi/client, served through
    DEMO_DIR) passes the demo's own browser conversation (tests/demo/test_browser_chat.py)."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path}/chatapi.db", DEMO_ENABLED=True, DEMO_DIR=str(EXAMPLE_DIR)
    )
    with serve_process(child_env(settings), tmp_path, "example") as child:
        created = httpx.post(
            f"{child.base}/api/v1/clients",
            json={"name": "Demo", "slug": settings.DEMO_CLIENT_SLUG},
            headers=bearer(ADMIN_KEY),
            timeout=30,
        )
        assert created.status_code == 201, created.text
        # The page served is the example's, which loads the vendored client.
        assert "@chatapi/client" in httpx.get(f"{child.base}/demo", timeout=30).text
        server = DemoServer(child, created.json()["master_key"])
        problems: list[str] = []
        asyncio.run(_in_chromium(chromium, server, problems, tmp_path / "example.png"))
        assert problems == [], problems


async def _in_chromium(chromium: str, server: DemoServer, problems: list[str], shot: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            await _conversation(browser, server, problems, shot)
        except Exception as exc:
            raise AssertionError(
                f"{exc}\n--- page errors:\n"
                + "\n".join(problems)
                + f"\n--- server output:\n{server.child.output()[-4000:]}"
            ) from exc
        finally:
            await browser.close()
