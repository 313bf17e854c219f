"""`/docs` (Swagger UI) and `/redoc` (ReDoc) with their files served by the API itself.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so on an
air-gapped host they are blank. The files come from the `fastapi-offline` package (a pinned
dependency that ships them; we use only its static folder) and are served under
`/docs/assets`; the pages name no other host, and their Content-Security-Policy has the
browser refuse any other host the viewers' code might still reach for (ReDoc's sidebar
fetches its maker's logo from a CDN: blocked before any request, the link stays).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
# Swagger UI's default validatorUrl shows a badge fetched from validator.swagger.io for any
# document not served from localhost: the one outside call left after the files are ours.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
# Inline script and styles: FastAPI's page configures Swagger UI in a <script>, and both
# viewers inject <style> elements; ReDoc runs its search in a worker made from a blob: URL.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
        "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'"
    ),
}


def assets_dir() -> Path:
    """Where the installed package keeps Swagger UI's and ReDoc's files."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve the two documentation pages and their files (create the app with
    docs_url=None and redoc_url=None so FastAPI's CDN versions are not mounted)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # The page falls back to the browser's own fonts.
            with_google_fonts=False,
        )
        page.headers.update(PAGE_HEADERS)
        return page
