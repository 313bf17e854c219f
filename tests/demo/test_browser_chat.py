"""The browser demo end to end: two headless Chromium pages on a real `chatapi serve`.

The server runs in the embedded default (SQLite, Celery inside) with DEMO_ENABLED, as the
README's "Try it in a browser" does. Ada and Grace sign in through the page, and the test
checks what a person would see: Grace's unread badge for a room she is not looking at,
Ada's typing and message showing up in Grace's page, Grace's reply in Ada's, and a
notification sent with the real API (the demo client's master key) as a toast in Grace's
page with its inbox item. Every wait is on the page's own elements (Playwright's `expect`
polls them) with generous timeouts; nothing sleeps. It saves a screenshot in the test's
temporary directory, or over docs/img/browser-chat.png (the README's) with
CHATAPI_UPDATE_SCREENSHOT=1.

Chromium is Debian's (`apt-get install chromium`, done by scripts/test.sh), driven by
Playwright for Python; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.support.api import bearer
from tests.support.processes import ChildProcess, serve_process

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
# Playwright polls the page until this many ms pass: generous for a loaded 2-core machine.
WAIT_MS = 15_000
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "browser-chat.png"
# A run rewrites the README's picture only when asked: the tree stays clean otherwise.
UPDATE_SCREENSHOT_ENV = "CHATAPI_UPDATE_SCREENSHOT"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium, else a skip (locally) or a failure (CI=true: it must run there)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "chromium is not installed (scripts/test.sh runs `apt-get install -y chromium`)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class DemoServer:
    """A running server with the demo on, and the demo client's master key."""

    child: ChildProcess
    master_key: str

    @property
    def base(self) -> str:
        """The server's URL."""
        return self.child.base


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`chatapi serve` (embedded, SQLite) with DEMO_ENABLED; the demo client is made first
    through the admin API, the way an operator who wants its master key does."""
    workdir = tmp_path_factory.mktemp("browser-chat")
    settings = make_settings(f"sqlite+aiosqlite:///{workdir}/chatapi.db", DEMO_ENABLED=True)
    with serve_process(child_env(settings), workdir, "demo") as child:
        created = httpx.post(
            f"{child.base}/api/v1/clients",
            json={"name": "Demo", "slug": settings.DEMO_CLIENT_SLUG},
            headers=bearer(ADMIN_KEY),
            timeout=30,
        )
        assert created.status_code == 201, created.text
        yield DemoServer(child, created.json()["master_key"])


async def sign_in(browser: Browser, base: str, name: str, problems: list[str]) -> Page:
    """A page of its own (own storage) signed in as `name`, connected, showing the lobby."""
    context = await browser.new_context(viewport={"width": 1200, "height": 640})
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"{name}: {error}"))
    page.on(
        "console",
        lambda msg: problems.append(f"{name} console: {msg.text}") if msg.type == "error" else None,
    )
    await page.goto(f"{base}/demo")
    await page.locator("#name").fill(name)
    await page.locator("#login button").click()
    await expect(page.locator("#status")).to_have_text("connected", timeout=WAIT_MS)
    await expect(page.locator("#room-title")).to_have_text("# lobby", timeout=WAIT_MS)
    return page


async def open_room(page: Page, name: str) -> None:
    """Click a room in the list and wait until it is shown."""
    await page.locator(f'#rooms [data-room-name="{name}"]').click()
    await expect(page.locator("#room-title")).to_have_text(f"# {name}", timeout=WAIT_MS)


async def test_two_pages_chat_live_and_a_notification_toasts(
    chromium: str, demo_server: DemoServer, tmp_path: Path
) -> None:
    screenshot = (
        README_SCREENSHOT
        if os.environ.get(UPDATE_SCREENSHOT_ENV) == "1"
        else tmp_path / "browser-chat.png"
    )
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            await _conversation(browser, demo_server, problems, screenshot)
        except Exception as exc:
            # What the pages and the server said is what explains a browser failure.
            raise AssertionError(
                f"{exc}\n--- page errors:\n"
                + "\n".join(problems)
                + f"\n--- server output:\n{demo_server.child.output()[-4000:]}"
            ) from exc
        finally:
            await browser.close()
    assert problems == [], problems


async def _conversation(
    browser: Browser, server: DemoServer, problems: list[str], screenshot: Path
) -> None:
    ada = await sign_in(browser, server.base, "Ada", problems)
    grace = await sign_in(browser, server.base, "Grace", problems)
    await expect(ada.locator("#messages .note")).to_have_text("Grace joined", timeout=WAIT_MS)

    # A message in a room Grace is not looking at: an unread badge on it, not a message.
    await open_room(ada, "random")
    await ada.locator("#message").fill("psst, over here")
    await ada.locator("#message").press("Enter")
    badge = grace.locator('#rooms [data-room-name="random"] .badge')
    await expect(badge).to_have_text("1", timeout=WAIT_MS)

    # Typing, then the message, both live in Grace's lobby.
    await open_room(ada, "lobby")
    await ada.locator("#message").press_sequentially("hello from Ada")
    await expect(grace.locator("#typing")).to_have_text("Ada is typing…", timeout=WAIT_MS)
    await ada.locator("#message").press("Enter")
    from_ada = grace.locator("#messages .message").filter(has_text="hello from Ada")
    await expect(from_ada).to_be_visible(timeout=WAIT_MS)
    await expect(from_ada.locator(".sender")).to_have_text("Ada", timeout=WAIT_MS)
    await expect(grace.locator("#typing")).to_have_text("", timeout=WAIT_MS)

    # And back: Grace's reply in Ada's page.
    await grace.locator("#message").fill("hi Ada! nice demo")
    await grace.locator("#message").press("Enter")
    from_grace = ada.locator("#messages .message").filter(has_text="hi Ada! nice demo")
    await expect(from_grace.locator(".sender")).to_have_text("Grace", timeout=WAIT_MS)

    # Ada types on (for the screenshot) while a notification for Grace goes through the
    # real API: websocket channel -> in-app toast and an unread inbox item.
    typing = asyncio.create_task(
        ada.locator("#message").press_sequentially("see you at the party!", delay=120)
    )
    try:
        await expect(grace.locator("#typing")).to_have_text("Ada is typing…", timeout=WAIT_MS)
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            sent = await http.post(
                "/api/v1/notifications/send",
                headers=bearer(server.master_key),
                json={
                    "channels": ["websocket"],
                    "recipients": [{"external_id": "demo:grace"}],
                    "websocket": {
                        "event": "order.shipped",
                        "data": {"title": "Order A-1042 shipped", "body": "Arriving Thursday"},
                    },
                },
            )
        assert sent.status_code == 202, sent.text
        toast = grace.locator("#toasts .toast").filter(has_text="Order A-1042 shipped")
        await expect(toast).to_be_visible(timeout=WAIT_MS)
        await expect(toast).to_contain_text("Arriving Thursday")
        inbox_item = grace.locator("#inbox li.unread").filter(has_text="Order A-1042 shipped")
        await expect(inbox_item).to_be_visible(timeout=WAIT_MS)
        await expect(grace.locator("#inbox-count")).to_have_text("1", timeout=WAIT_MS)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        await grace.screenshot(path=str(screenshot))
        assert (await asyncio.to_thread(screenshot.stat)).st_size > 0
    finally:
        await typing

    # Reading the item in the page reaches the API: the count event clears the badge.
    await inbox_item.click()
    await expect(grace.locator("#inbox-count")).to_be_hidden(timeout=WAIT_MS)
    await expect(grace.locator("#inbox li.unread")).to_have_count(0, timeout=WAIT_MS)
