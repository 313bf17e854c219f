"""Our own limits defer, never fail (DESIGN.md §4), on the embedded relay under a clock that
stands still: a delivery refused by the per-endpoint in-flight cap, or claimed by a worker
that is shutting down, goes back without an attempt, an attempt row or a mark on the
endpoint's health — and a cap refusal goes out when the slot frees, with no timer (the
clock never moves, so nothing can fall due later)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col

from app.core.clock import ManualClock
from app.main import create_app
from app.notifications.models import Delivery, DeliveryAttempt
from app.runtime import Runtime
from tests.channels.receiver import Receiver, running_receiver
from tests.conftest import make_settings
from tests.notifications.relay import RELAY_SETTINGS, add_endpoint, send, wait_for_status
from tests.support.api import Api, Tenant
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process

BODY = {"channels": ["webhook"], "webhook": {"event_type": "t", "payload": {}}}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
async def relay(own_sqlite_url: str, clock: ManualClock) -> AsyncIterator[Api]:
    """The embedded relay with one request in flight per endpoint, on the frozen clock."""
    settings = make_settings(own_sqlite_url, **RELAY_SETTINGS, WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT=1)
    app = create_app(settings)
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
    ):
        yield Api(http, app=app)


def _runtime(api: Api) -> Runtime:
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    return runtime


async def _rows(rt: Runtime, client_id: str) -> list[Delivery]:
    async with rt.db.read_session() as session:
        query = select(Delivery).where(col(Delivery.client_id) == client_id)
        return list((await session.execute(query)).scalars())


async def _attempt_rows(rt: Runtime, client_id: str) -> list[DeliveryAttempt]:
    async with rt.db.read_session() as session:
        query = select(DeliveryAttempt).where(col(DeliveryAttempt.client_id) == client_id)
        return list((await session.execute(query)).scalars())


async def _endpoint(api: Api, tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    r = await api.http.get(f"/api/v1/webhook-endpoints/{endpoint_id}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _eventually(check: Any, what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_deliveries_refused_by_the_cap_spend_nothing_and_go_out_when_the_slot_frees(
    relay: Api, receiver: Receiver, clock: ManualClock
) -> None:
    rt = _runtime(relay)
    assert relay.app is not None
    tenant = await relay.tenant()
    endpoint_id, _ = await add_endpoint(relay.app, tenant, receiver.url("/slow"))
    release = receiver.hold("/slow")
    sent = [await send(relay, tenant, BODY) for _ in range(3)]
    await asyncio.wait_for(receiver.arrived["/slow"].wait(), 20)
    started = clock.now()

    async def two_given_back() -> bool:
        rows = await _rows(rt, tenant.id)
        return sorted((d.status, d.attempts) for d in rows) == [
            ("pending", 0),
            ("pending", 0),
            ("sending", 1),
        ]

    await _eventually(two_given_back, "the two refused deliveries back as pending, unspent")
    assert await _attempt_rows(rt, tenant.id) == []  # a refusal is not an attempt
    endpoint = await _endpoint(relay, tenant, endpoint_id)
    assert (endpoint["failure_count"], endpoint["failing_since"]) == (0, None)

    release.set()  # the slot frees: the waiting deliveries follow, no timer involved
    for notification in sent:
        done = await wait_for_status(relay, tenant, notification["id"], {"delivered", "failed"})
        assert done["status"] == "delivered", done
    assert clock.now() == started  # the clock never moved: nothing fell due by time
    assert sorted(d.attempts for d in await _rows(rt, tenant.id)) == [1, 1, 1]
    assert [a.outcome for a in await _attempt_rows(rt, tenant.id)] == ["delivered"] * 3
    assert receiver.paths().count("/slow") == 3
    endpoint = await _endpoint(relay, tenant, endpoint_id)
    assert (endpoint["failure_count"], endpoint["failing_since"]) == (0, None)


async def test_a_worker_shutting_down_gives_claimed_deliveries_back_unspent(
    relay: Api, receiver: Receiver, clock: ManualClock
) -> None:
    rt = _runtime(relay)
    assert relay.app is not None
    tenant = await relay.tenant()
    await add_endpoint(relay.app, tenant, receiver.url("/hook"))
    send_at = clock.now() + timedelta(seconds=60)
    sent = [await send(relay, tenant, {**BODY, "send_at": send_at.isoformat()}) for _ in range(3)]
    rt.shutting_down.set()
    interval = timedelta(seconds=rt.settings.DELIVERY_SWEEP_INTERVAL_SECONDS)
    try:
        clock.advance(61)  # due now: the sweep rings them and the (stopping) worker claims them

        async def given_back() -> bool:
            rows = await _rows(rt, tenant.id)
            return all(d.next_attempt_at == clock.now() + interval for d in rows)

        await _eventually(given_back, "the claimed deliveries to be given back")
        rows = await _rows(rt, tenant.id)
        assert [(d.status, d.attempts, d.lease_until) for d in rows] == [("pending", 0, None)] * 3
        assert await _attempt_rows(rt, tenant.id) == []
        assert receiver.requests == []
    finally:
        rt.shutting_down.clear()
    # Due one sweep interval on, after the give-back surely committed: the next sweep rings
    # them (another worker's in production; this relay's own here).
    clock.advance(interval.total_seconds())
    for notification in sent:
        done = await wait_for_status(relay, tenant, notification["id"], {"delivered", "failed"})
        assert done["status"] == "delivered", done
    assert sorted(d.attempts for d in await _rows(rt, tenant.id)) == [1, 1, 1]
