"""In-app is delivered when stored (API.md §6), end to end on real sockets, real Redis
(presence and bus) and each database: the API process pushes right after the send's commit
(one presence round trip per chunk); an offline user gets the owed pushes on connect, oldest
first, once; a send whose push never ran (the process died after its commit) is finished by
the sweep; a 600-recipient campaign all online reaches everyone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.clock import ManualClock
from app.main import create_app
from app.notifications import push_repository as owed
from app.notifications import sweep
from app.notifications.push import SWEEP_GRACE_SECONDS, InAppPush
from app.runtime import Runtime
from tests.conftest import make_settings
from tests.support.api import Api, Tenant
from tests.support.inprocess import serve_in_process
from tests.support.realtime import Received, SioClient, WsClient, until, wait_for

URL = "/api/v1/notifications/send"


class Served:
    def __init__(self, api: Api, base: str, runtime: Runtime) -> None:
        self.api, self.base, self.runtime = api, base, runtime


@pytest.fixture
async def served(db_url: str, redis_server_url: str, redis_prefix: str) -> AsyncIterator[Served]:
    """One API process in Redis mode (presence and bus in the real Redis), no worker: in-app
    delivery needs none."""
    settings = make_settings(
        db_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}inapp:",
        # The campaign test makes 600 users and keys with one master key.
        RATE_LIMIT_REQUESTS_PER_MINUTE=100_000,
    )
    app = create_app(settings, run_embedded_worker=False)
    async with serve_in_process(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        yield Served(Api(http, app=app), base, app.state.runtime)


def _body(user_ids: list[str], n: int = 1) -> dict[str, Any]:
    return {
        "channels": ["websocket"],
        "recipients": [{"user_id": u} for u in user_ids],
        "websocket": {"event": "order.shipped", "data": {"n": n}},
    }


async def _send(api: Api, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.http.post(URL, json=body, headers=tenant.auth)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _notifications(events: list[Received]) -> list[dict[str, Any]]:
    return [data for name, data in events if name == "notification"]


async def _owed(runtime: Runtime, tenant: Tenant, user_id: str) -> list[str]:
    async with runtime.db.read_session() as session:
        rows = await owed.owed_for_user(session, tenant.id, user_id, limit=100)
    return [p.delivery_id for p in rows]


async def test_online_and_offline_recipients_are_delivered_at_once_and_pushed_when_connected(
    served: Served,
) -> None:
    api, runtime = served.api, served.runtime
    tenant = await api.tenant()
    online, offline = await api.user(tenant), await api.user(tenant)
    online_key = await api.login(tenant, online["id"])
    offline_key = await api.login(tenant, offline["id"])
    live = await SioClient.open(served.base, online_key)
    try:
        sent = await _send(api, tenant, _body([online["id"], offline["id"]]))
        # Both stored = delivered, in the 202 itself; the notification is done.
        assert {d["status"] for d in sent["deliveries"]} == {"delivered"}
        assert sent["status"] == "delivered"
        by_user = {d["recipient"]["user_id"]: d["id"] for d in sent["deliveries"]}
        _, data = await wait_for(live.events, lambda e: e[0] == "notification", timeout=10)
        assert data["inbox_id"] == by_user[online["id"]]
        assert data["notification_id"] == sent["id"] and data["data"] == {"n": 1}
        r = await api.http.get(f"/api/v1/notifications/{sent['id']}", headers=tenant.auth)
        assert r.json()["status"] == "delivered"
        # Two more while the offline user stays offline: three owed, oldest first.
        later = [await _send(api, tenant, _body([offline["id"]], n)) for n in (2, 3)]
        expected = [by_user[offline["id"]]] + [s["deliveries"][0]["id"] for s in later]
        assert await _owed(runtime, tenant, offline["id"]) == expected
    finally:
        await live.close()

    first = await WsClient.open(served.base, offline_key)
    try:
        await until(lambda: len(_notifications(first.events)) >= 3, "owed pushes", 10)
        assert [d["inbox_id"] for d in _notifications(first.events)] == expected
        await until_async(lambda: _owed(runtime, tenant, offline["id"]), [], "pushes recorded")
    finally:
        await first.close()
    second = await WsClient.open(served.base, offline_key)
    try:
        # Sentinel: a new notification arrives; the three pushed ones do not come again.
        fresh = await _send(api, tenant, _body([offline["id"]], 4))
        await wait_for(second.events, lambda e: e[0] == "notification", timeout=10)
        assert {d["inbox_id"] for d in _notifications(second.events)} == {
            fresh["deliveries"][0]["id"]
        }
    finally:
        await second.close()


async def until_async(fetch: Any, want: Any, what: str, timeout: float = 10.0) -> None:
    """Wait until `await fetch()` equals `want`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await fetch()) != want:
        assert asyncio.get_running_loop().time() < deadline, f"{what}: {got}"
        await asyncio.sleep(0.02)


async def test_a_push_lost_between_commit_and_publish_is_finished_by_the_sweep(
    served: Served, clock: ManualClock
) -> None:
    api, runtime = served.api, served.runtime
    tenant = await api.tenant()
    user = await api.user(tenant)
    socket = await WsClient.open(served.base, await api.login(tenant, user["id"]))
    runtime.part(InAppPush).fast_path = False  # the process "dies" right after its commit
    try:
        sent = await _send(api, tenant, _body([user["id"]]))
        [delivery_id] = [d["id"] for d in sent["deliveries"]]
        assert sent["status"] == "delivered"
        assert await _owed(runtime, tenant, user["id"]) == [delivery_id]
        # Within the grace the sweep leaves it to the fast path.
        assert (await sweep.sweep_due(runtime)).pushed == 0
        clock.advance(SWEEP_GRACE_SECONDS + 1)
        assert (await sweep.sweep_due(runtime)).pushed == 1
        _, data = await wait_for(socket.events, lambda e: e[0] == "notification", timeout=10)
        assert data["inbox_id"] == delivery_id
        assert await _owed(runtime, tenant, user["id"]) == []
        assert (await sweep.sweep_due(runtime)).pushed == 0  # pushed once
    finally:
        runtime.part(InAppPush).fast_path = True
        await socket.close()


@pytest.mark.slow
async def test_a_600_recipient_campaign_all_online_reaches_everyone(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: one pooled Redis connection per delivery's presence read exhausted the pool
    # (MaxConnectionsError) and the deliveries waited for their retry (~40 s).
    api = served.api
    tenant = await api.tenant()
    users = [await api.user(tenant) for _ in range(600)]
    keys = [await api.login(tenant, u["id"]) for u in users]
    sockets: list[WsClient] = []
    try:
        for start in range(0, len(keys), 50):
            sockets += await asyncio.gather(
                *(WsClient.open(served.base, k) for k in keys[start : start + 50])
            )
        with caplog.at_level(logging.WARNING):
            sent = await _send(api, tenant, _body([u["id"] for u in users]))
            assert sent["status"] == "delivered"
            await until(
                lambda: all(_notifications(s.events) for s in sockets), "everyone has it", 30
            )
        assert not [r for r in caplog.records if "connections" in r.getMessage().lower()]
        assert all(_notifications(s.events)[0]["notification_id"] == sent["id"] for s in sockets)
    finally:
        # In batches: each disconnect is one presence update (one pooled connection).
        for start in range(0, len(sockets), 50):
            batch = sockets[start : start + 50]
            await asyncio.gather(*(s.close() for s in batch), return_exceptions=True)
