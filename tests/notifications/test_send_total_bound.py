"""NOTIFICATION_MAX_TOTAL_BYTES (issue 20, point 5) on both databases: a send whose content
times its expanded recipients exceeds the bound is 413 problem+json naming the limit, and
stores nothing; one at the bound or under it is accepted. Recipients are counted after
expansion: a user named twice is one, a webhook event counts every subscribed endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from app.main import create_app
from app.runtime import Runtime
from tests.conftest import app_client, make_settings
from tests.notifications.relay import add_endpoint
from tests.support.api import Api, Tenant

URL = "/api/v1/notifications/send"
LIMIT = 100_000
BLOB = "x" * 40_000  # one channel's content is ~40 KB: two recipients fit, three do not


@pytest.fixture
async def bounded(db_url: str) -> AsyncIterator[Api]:
    settings = make_settings(db_url, NOTIFICATION_MAX_TOTAL_BYTES=LIMIT)
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


async def _stored(api: Api, tenant: Tenant) -> tuple[int, int, int]:
    """The tenant's notifications, deliveries and inbox items, counted in the database."""
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    async with runtime.db.session() as session:
        counts = []
        for table in ("notifications", "deliveries", "inbox_items"):
            found = await session.execute(
                text(f"SELECT count(*) FROM {table} WHERE client_id = :c"),
                {"c": tenant.id},
            )
            counts.append(int(found.scalar_one()))
    return counts[0], counts[1], counts[2]


def _ws(recipients: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "channels": ["websocket"],
        "recipients": recipients,
        "websocket": {"event": "report.ready", "data": {"blob": BLOB}},
    }


async def test_a_send_over_the_total_bound_is_413_and_stores_nothing(bounded: Api) -> None:
    api = bounded
    tenant = await api.tenant()
    users = [await api.user(tenant) for _ in range(3)]
    r = await api.http.post(
        URL, json=_ws([{"user_id": u["id"]} for u in users]), headers=tenant.auth
    )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 413
    assert "NOTIFICATION_MAX_TOTAL_BYTES" in problem["detail"]
    assert str(LIMIT) in problem["detail"]
    assert await _stored(api, tenant) == (0, 0, 0)

    # Two recipients fit; a user named by id and again by external id is one recipient.
    twice = [{"user_id": users[0]["id"]}, {"external_id": users[0]["external_id"]}]
    r = await api.http.post(
        URL, json=_ws([*twice, {"user_id": users[1]["id"]}]), headers=tenant.auth
    )
    assert r.status_code == 202, r.text
    assert await _stored(api, tenant) == (1, 2, 2)


async def test_webhook_subscribers_count_as_recipients(bounded: Api) -> None:
    api = bounded
    assert api.app is not None
    tenant = await api.tenant()
    for _ in range(3):
        await add_endpoint(api.app, tenant, "https://hooks.example.com/in", ["report.ready"])
    body = {
        "channels": ["webhook"],
        "webhook": {"event_type": "report.ready", "payload": {"blob": BLOB}},
    }
    r = await api.http.post(URL, json=body, headers=tenant.auth)
    assert r.status_code == 413, r.text
    assert "NOTIFICATION_MAX_TOTAL_BYTES" in r.json()["detail"]
    assert await _stored(api, tenant) == (0, 0, 0)


async def test_skipped_deliveries_carry_nothing_and_do_not_count(bounded: Api) -> None:
    # Three e-mail recipients, but only one has an address: one e-mail is sent, two skipped.
    api = bounded
    tenant = await api.tenant()
    users = [await api.user(tenant, email="a@example.com"), await api.user(tenant)]
    users.append(await api.user(tenant))
    body = {
        "channels": ["email"],
        "recipients": [{"user_id": u["id"]} for u in users],
        "email": {"subject": "Report", "text": BLOB * 2},
    }
    r = await api.http.post(URL, json=body, headers=tenant.auth)
    assert r.status_code == 202, r.text
    assert await _stored(api, tenant) == (1, 3, 0)
