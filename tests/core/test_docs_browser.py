"""/docs and /redoc in a real browser cut off from every other host (as on an air-gapped
machine): both render the API, and the page asks nothing of any host but the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Route, async_playwright, expect

from tests.conftest import child_env, make_settings
from tests.demo.test_browser_chat import CHROMIUM_FLAGS, WAIT_MS, chromium
from tests.support.processes import ChildProcess, serve_process

__all__ = ["chromium"]

pytestmark = pytest.mark.slow

# What each page shows once its viewer has loaded and rendered the document.
RENDERED = {
    "/docs": ".swagger-ui .opblock",  # one block per operation
    "/redoc": "[data-section-id^='tag/']",  # ReDoc's section per tag
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildProcess]:
    workdir = tmp_path_factory.mktemp("docs")
    settings = make_settings(f"sqlite+aiosqlite:///{workdir}/chatapi.db")
    with serve_process(child_env(settings), workdir, "docs") as child:
        yield child


@pytest.mark.parametrize("path", sorted(RENDERED))
async def test_the_docs_page_renders_with_no_other_host_reachable(
    chromium: str, server: ChildProcess, path: str, tmp_path: Path
) -> None:
    local = urlsplit(server.base).netloc
    asked_elsewhere: list[str] = []
    problems: list[str] = []

    async def air_gap(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            asked_elsewhere.append(route.request.url)
            await route.abort("internetdisconnected")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda msg: (
                    problems.append(msg.text)
                    # The page's policy refusing an outside image is the point, not a problem.
                    if msg.type == "error" and "Content Security Policy" not in msg.text
                    else None
                ),
            )
            await page.route("**/*", air_gap)
            await page.goto(server.base + path)
            await expect(page.locator(RENDERED[path]).first).to_be_visible(timeout=WAIT_MS)
            await page.screenshot(path=tmp_path / "docs.png")
        finally:
            await browser.close()
    assert asked_elsewhere == []
    assert problems == []
