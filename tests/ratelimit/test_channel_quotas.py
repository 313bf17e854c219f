"""Channel quotas: over the quota a delivery is deferred to the window's reset, never
failed, and every deferred delivery completes later."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial

import pytest

from app.channels.base import DeliveryTarget, Quota
from app.channels.driver import BaseChannel
from app.channels.email import EmailChannel
from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.ids import new_id
from app.observability.metrics import DEFERRALS
from app.ratelimit.policies import ClientLimits
from tests.channels.receiver import Receiver, running_receiver
from tests.conftest import make_settings
from tests.notifications.relay import add_endpoint, attempts, send, wait_for_status
from tests.notifications.test_delivery_e2e import Relay, running_relay


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(own_sqlite_url):
        yield r


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def _deferrals(channel: str) -> float:
    return DEFERRALS.labels(channel)._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_webhooks_over_the_endpoint_quota_are_deferred_and_all_delivered_later(
    relay: Relay, receiver: Receiver
) -> None:
    api = relay.api
    tenant = await api.tenant()
    r = await api.http.patch(
        "/api/v1/clients/me",
        json={"rate_limits": {"webhooks_per_second_per_endpoint": 2}},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    await add_endpoint(relay.app, tenant, receiver.url("/hook"))
    before = _deferrals("webhook")
    body = {"channels": ["webhook"], "webhook": {"event_type": "t", "payload": {}}}
    sent = [await send(api, tenant, body) for _ in range(6)]
    for notification in sent:
        done = await wait_for_status(api, tenant, notification["id"], {"delivered", "failed"})
        assert done["status"] == "delivered", done
        [delivery] = done["deliveries"]
        # A deferral is not an attempt: each went out exactly once, never failed.
        assert delivery["attempts"] == 1, delivery
        recorded = await attempts(api, tenant, notification["id"])
        assert [a["outcome"] for a in recorded] == ["delivered"]
    assert len(receiver.requests) == 6
    assert _deferrals("webhook") > before


def _email_quota(client_id: str) -> Callable[[ClientLimits], Quota | None]:
    """The e-mail channel's quota for a delivery of `client_id` (the driver names it)."""
    return partial(EmailChannel().quota, DeliveryTarget(new_id(), client_id))


def _settings() -> Settings:
    return make_settings("sqlite+aiosqlite:///:memory:")


async def test_the_email_quota_is_per_client_per_hour_and_reopens_on_the_hour(
    clock: ManualClock,
) -> None:
    from limits.aio.storage import MemoryStorage

    from app.core.broadcast import MemoryBroadcast
    from app.core.db import Database
    from app.ratelimit.policies import RateLimitPolicies

    settings = _settings()
    db = Database(settings.DATABASE_URL)
    policies = RateLimitPolicies(settings, MemoryStorage(), db, MemoryBroadcast())
    # Seed the cache as a read of the client's settings would (no table in this database).
    stored = {"rate_limits": {"emails_per_hour": 2}}
    policies._cache["c1"] = (ClientLimits.from_stored(settings, stored), float("inf"))
    policies._cache["c2"] = (ClientLimits.from_stored(settings, stored), float("inf"))
    try:
        verdicts = [await policies.hit_channel("c1", _email_quota("c1")) for _ in range(3)]
        assert [v.allowed for v in verdicts if v] == [True, True, False]
        other = await policies.hit_channel("c2", _email_quota("c2"))
        assert other is not None and other.allowed  # another client's budget is its own
        no_quota = partial(BaseChannel().quota, DeliveryTarget(new_id(), "c1"))
        assert await policies.hit_channel("c1", no_quota) is None  # a channel without one
        refused = verdicts[2]
        assert refused is not None and refused.reset_at % 3600 == 0
        clock.advance(refused.reset_in())
        reopened = await policies.hit_channel("c1", _email_quota("c1"))
        assert reopened is not None and reopened.allowed
    finally:
        await db.dispose()
