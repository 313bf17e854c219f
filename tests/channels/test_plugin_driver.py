"""A plug-in channel gets what a built-in gets through the driver interface: its content is
typed (validated on send, 422 with a clear problem, shown in the OpenAPI document), its
recipients expand like a built-in's, and it has a per-tenant quota."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage

from app.channels.base import ChannelFactoryContext, DeliveryTarget, load_channels
from app.core.broadcast import MemoryBroadcast
from app.core.db import Database
from app.core.ids import new_id
from app.main import create_app
from app.ratelimit.policies import ClientLimits, RateLimitPolicies
from tests.conftest import app_client, make_settings
from tests.support.api import Api


@pytest.fixture
async def plugin_api(
    example_plugin_installed: None, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """The API with the example `file` channel loaded (installed before the app starts)."""
    monkeypatch.setenv("CHATAPI_FILE_CHANNEL_PATH", str(tmp_path / "out.jsonl"))
    app = create_app(make_settings(db_url), run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


async def test_plugin_content_is_validated_by_its_model(plugin_api: Api) -> None:
    tenant = await plugin_api.tenant()
    user = await plugin_api.user(tenant, email="ada@example.com")
    body = {"channels": ["file"], "recipients": [{"user_id": user["id"]}]}

    wrong = await plugin_api.http.post(
        "/api/v1/notifications/send",
        json={**body, "file": {"event": "order.shipped", "txt": "typo"}},
        headers=tenant.auth,
    )
    missing = await plugin_api.http.post(
        "/api/v1/notifications/send", json=body, headers=tenant.auth
    )
    ok = await plugin_api.http.post(
        "/api/v1/notifications/send",
        json={**body, "file": {"event": "order.shipped", "text": "It left."}},
        headers=tenant.auth,
    )

    assert wrong.status_code == 422, wrong.text
    assert wrong.headers["content-type"].startswith("application/problem+json")
    detail = wrong.json()["detail"]
    assert detail.startswith("file: ") and "text" in detail and "txt" in detail, detail
    assert missing.status_code == 422 and "needs its content object 'file'" in missing.text
    assert ok.status_code == 202, ok.text
    [delivery] = ok.json()["deliveries"]
    # Expanded like a built-in's: the user, with the address a channel may want.
    assert delivery["recipient"] == {
        "user_id": user["id"],
        "external_id": user["external_id"],
        "email": "ada@example.com",
    }
    stored = await plugin_api.http.get(
        f"/api/v1/notifications/{ok.json()['id']}", headers=tenant.auth
    )
    assert stored.status_code == 200


async def test_plugin_quota_is_per_tenant(
    example_plugin_installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATAPI_FILE_CHANNEL_PER_MINUTE", "2")
    channels = load_channels(ChannelFactoryContext())
    channel = channels["file"]
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    db = Database(settings.DATABASE_URL)
    policies = RateLimitPolicies(settings, MemoryStorage(), db, MemoryBroadcast())
    for client in ("c1", "c2"):  # no clients table here: what a read would cache
        policies._cache[client] = (ClientLimits.defaults(settings), float("inf"))
    try:
        hits = [
            await policies.hit_channel("c1", partial(channel.quota, DeliveryTarget(new_id(), "c1")))
            for _ in range(3)
        ]
        other = await policies.hit_channel(
            "c2", partial(channel.quota, DeliveryTarget(new_id(), "c2"))
        )
    finally:
        await db.dispose()
        for c in channels.values():
            await c.aclose()
    assert [h.allowed for h in hits if h] == [True, True, False]
    assert hits[2] is not None and hits[2].period == 60
    assert other is not None and other.allowed  # each tenant has its own budget


async def test_openapi_shows_builtin_content_models(plugin_api: Api) -> None:
    schema = (await plugin_api.http.get("/api/v1/openapi.json")).json()
    send = schema["components"]["schemas"]["SendRequest"]["properties"]
    assert {"websocket", "email", "webhook"} <= send.keys()
