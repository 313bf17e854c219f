"""The API process freezes its startup heap (app/core/heap.py)."""

from __future__ import annotations

import gc

from app.main import create_app
from tests.conftest import app_client, make_settings


async def test_a_started_app_leaves_its_startup_objects_out_of_collections(
    sqlite_url: str,
) -> None:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async for http in app_client(app):
        assert (await http.get("/health/live")).status_code == 200
        # Frozen objects are in the permanent generation: the collector skips them.
        assert gc.get_freeze_count() > 10_000
