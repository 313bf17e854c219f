"""Routers are tried hot sends first, while the OpenAPI document keeps its own order."""

from __future__ import annotations

from fastapi.routing import APIRoute

from app.api.router import API_PREFIX, API_ROUTERS
from app.main import create_app
from tests.conftest import make_settings


def test_sends_are_matched_first_and_the_document_keeps_api_routers_order() -> None:
    openapi_app = create_app(
        make_settings("sqlite+aiosqlite:///:memory:"), run_embedded_worker=False
    )
    # FastAPI tries every route in inclusion order: a send should not be tried against the
    # forty routes documented before it.
    included = [
        r.original_router  # type: ignore[attr-defined]
        for r in openapi_app.routes
        if getattr(r, "original_router", None) in API_ROUTERS
    ]
    first = [route for route in included[0].routes if isinstance(route, APIRoute)]
    assert any(route.path == "/notifications/send" for route in first)

    documented = list(dict.fromkeys(API_PREFIX + r.path for g in API_ROUTERS for r in g.routes))
    paths = [p for p in openapi_app.openapi()["paths"] if p in documented]
    assert paths == [p for p in documented if p in paths]
