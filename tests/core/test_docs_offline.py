"""/docs and /redoc work on a host with no internet access: every file their pages load is
served by the API itself (from an installed package), never from a CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from app.main import create_app
from tests.conftest import app_client, make_settings

# Attributes through which a page makes the browser fetch something.
URL_ATTRIBUTES = {"src", "href", "spec-url", "data", "action", "poster"}
# Any absolute or scheme-relative URL, wherever it is written (attributes, inline scripts).
ANY_URL = re.compile(r"""(?:[a-z][a-z0-9+.-]*:)?//[^\s"'<>)]+""", re.IGNORECASE)
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in URL_ATTRIBUTES and value]


def references(html: str) -> list[str]:
    """Every URL a tag of `html` points at."""
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.fixture
async def docs_client(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async for client in app_client(app):
        yield client


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_page_names_no_other_host(docs_client: httpx.AsyncClient, path: str) -> None:
    page = await docs_client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = references(page.text)
    assert urls, "the page loads its viewer from somewhere"
    foreign = [u for u in urls if urlsplit(u).netloc or urlsplit(u).scheme]
    assert foreign == [], f"{path} loads from other hosts"
    # Inline scripts too (Swagger UI's config, ReDoc's fonts): no URL with a host anywhere.
    assert ANY_URL.findall(page.text) == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_every_file_the_docs_page_loads_is_served(
    docs_client: httpx.AsyncClient, path: str
) -> None:
    page = await docs_client.get(path)
    for url in references(page.text):
        asset = await docs_client.get(url)
        assert asset.status_code == 200, url
        if url.endswith("openapi.json"):
            assert asset.headers["content-type"] == "application/json"
            continue
        suffix = url[url.rfind(".") :]
        assert CONTENT_TYPES[suffix] in asset.headers["content-type"], url
        assert len(asset.content) > 1000, f"{url} is not the real file"


async def test_swagger_ui_asks_no_online_validator(docs_client: httpx.AsyncClient) -> None:
    # Swagger UI's default validatorUrl (validator.swagger.io) shows a badge fetched from
    # there for every spec not on localhost: off, so the page never calls out.
    page = await docs_client.get("/docs")
    assert '"validatorUrl": null' in page.text
