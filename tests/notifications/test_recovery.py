"""Bulk recovery: an endpoint's failed deliveries re-queued since a time, reaching a real
receiver that verifies signatures; a second call re-queues nothing; filters and the cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from app.core.clock import utcnow
from app.notifications import recovery
from app.notifications.recovery_repository import FailedFilter
from tests.channels.receiver import Receiver, running_receiver
from tests.notifications.relay import Relay, add_endpoint, running_relay, send, wait_for_status
from tests.support.realtime import until


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    """The embedded relay served over TCP."""
    async for r in running_relay(own_sqlite_url):
        yield r


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def _webhook(n: int) -> dict[str, object]:
    return {
        "channels": ["webhook"],
        "webhook": {"event_type": "order.shipped", "payload": {"n": n}},
    }


async def test_a_recovered_endpoint_receives_every_failed_delivery(
    relay: Relay, receiver: Receiver
) -> None:
    api = relay.api
    tenant = await api.tenant()
    endpoint_id, secret = await add_endpoint(relay.app, tenant, receiver.url("/down"))
    receiver.answer("/down", 500)
    since = (utcnow() - timedelta(minutes=1)).isoformat()
    sent = [await send(api, tenant, _webhook(n)) for n in range(3)]
    for s in sent:
        done = await wait_for_status(api, tenant, s["id"], {"delivered", "failed"})
        assert done["status"] == "failed"
    failed_requests = len(receiver.requests)

    receiver.answer("/down", 200)
    url = f"/api/v1/webhook-endpoints/{endpoint_id}/recover"
    r = await api.http.post(url, json={"since": since}, headers=tenant.auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"requeued": 3, "has_more": False}
    for s in sent:
        again = await wait_for_status(api, tenant, s["id"], {"delivered", "failed"})
        assert again["status"] == "delivered"
    await until(lambda: len(receiver.requests) == failed_requests + 3, "3 recovered requests")
    received = [Webhook(secret).verify(q.body, q.headers) for q in receiver.requests[-3:]]
    assert sorted(int(b["data"]["n"]) for b in received) == [0, 1, 2]

    # Idempotent: nothing is failed any more, nothing is re-queued.
    second = await api.http.post(url, json={"since": since}, headers=tenant.auth)
    assert second.json() == {"requeued": 0, "has_more": False}
    assert len(receiver.requests) == failed_requests + 3


async def test_recover_is_scoped_to_the_tenant_and_validates(relay: Relay) -> None:
    api = relay.api
    owner = await api.tenant()
    intruder = await api.tenant()
    endpoint_id, _ = await add_endpoint(relay.app, owner, "http://127.0.0.1:9/x")
    url = f"/api/v1/webhook-endpoints/{endpoint_id}/recover"
    r = await api.http.post(url, json={"since": "2026-01-01T00:00:00Z"}, headers=intruder.auth)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await api.http.post(url, json={"since": "yesterday"}, headers=owner.auth)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = await api.http.post(
        "/api/v1/notifications/retry", json={"status": "delivered"}, headers=owner.auth
    )
    assert r.status_code == 422


async def test_retry_by_filter_is_bounded_and_respects_filters(
    relay: Relay, receiver: Receiver
) -> None:
    api = relay.api
    tenant = await api.tenant()
    down_id, _ = await add_endpoint(relay.app, tenant, receiver.url("/down"))
    receiver.answer("/down", 500)
    sent = [await send(api, tenant, _webhook(n)) for n in range(3)]
    for s in sent:
        await wait_for_status(api, tenant, s["id"], {"failed"})
    # Another channel's filter matches nothing.
    r = await api.http.post(
        "/api/v1/notifications/retry", json={"channel": "email"}, headers=tenant.auth
    )
    assert r.json() == {"requeued": 0, "has_more": False}
    r = await api.http.post(
        "/api/v1/notifications/retry",
        json={"created_before": (utcnow() - timedelta(hours=1)).isoformat()},
        headers=tenant.auth,
    )
    assert r.json() == {"requeued": 0, "has_more": False}

    # A batch of 2 of the 3: `has_more`, then the rest. The receiver keeps failing, so the
    # re-queued ones fail again later; only the count per call matters here.
    async with relay.app.state.db.session() as session:
        first = await recovery.requeue_failed(
            session,
            tenant.id,
            FailedFilter(endpoint_id=down_id),
            relay.app.state.runtime.doorbell,
            batch=2,
        )
    assert first == (2, True)
    async with relay.app.state.db.session() as session:
        rest = await recovery.requeue_failed(
            session,
            tenant.id,
            FailedFilter(endpoint_id=down_id),
            relay.app.state.runtime.doorbell,
            batch=2,
        )
    assert rest == (1, False)
