"""Mailgun end to end in the embedded relay, on both databases: e-mail through the tenant's
`mailgun` provider to the fake Mailgun, then the fake's signed delivery events posted to
`/provider-events/{slug}/{name}` move the delivery (`bounced`, `complained`), suppress the
address for later sends (`skipped`), and anything unsigned, wrongly signed, stale or
replayed is a 401 that stores nothing; the primary answering 500 fails over in the same
attempt."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.providers.models import ProviderEventRecord
from app.runtime import Runtime
from tests.notifications.relay import Relay, attempts, running_relay, send, wait_for_status
from tests.support.api import Tenant
from tests.support.fake_mailgun import FakeMailgun, post_event, running_mailgun, signature

SIGNING_KEY = "mg-signing-key-0123456789"
ADDRESS = "ada@example.com"


@pytest.fixture
async def relay(db_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(db_url):
        yield r


@pytest.fixture
async def fake() -> AsyncIterator[FakeMailgun]:
    async with running_mailgun() as f:
        yield f


async def add_mailgun(
    relay: Relay, tenant: Tenant, fake: FakeMailgun, name: str = "mailgun"
) -> dict[str, Any]:
    body = {
        "name": name,
        "type": "mailgun",
        "settings": {
            "api_key": fake.api_key,
            "domain": "mg.shop.example",
            "base_url": fake.base_url,
            "webhook_signing_key": SIGNING_KEY,
            "from_email": "relay@shop.example",
            "from_name": "Shop",
        },
    }
    r = await relay.api.http.post("/api/v1/providers", json=body, headers=tenant.auth)
    assert r.status_code == 201, r.text
    out = dict(r.json())
    # The secrets are never answered, only named.
    assert out["secret_fields"] == ["api_key", "webhook_signing_key"]
    assert fake.api_key not in r.text and SIGNING_KEY not in r.text
    return out


async def route(relay: Relay, tenant: Tenant, providers: list[str]) -> None:
    r = await relay.api.http.put(
        "/api/v1/routing/email", json={"providers": providers}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text


async def mailgun_tenant(relay: Relay, fake: FakeMailgun) -> Tenant:
    tenant = await relay.api.tenant()
    await add_mailgun(relay, tenant, fake)
    await route(relay, tenant, ["mailgun"])
    return tenant


async def mail(relay: Relay, tenant: Tenant, address: str = ADDRESS) -> dict[str, Any]:
    body = {
        "channels": ["email"],
        "recipients": [{"email": address}],
        "email": {"subject": "Shipped", "text": "On its way"},
    }
    return await send(relay.api, tenant, body)


async def delivered(relay: Relay, tenant: Tenant, address: str = ADDRESS) -> dict[str, Any]:
    sent = await mail(relay, tenant, address)
    return await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})


def events_url(relay: Relay, tenant: Tenant, name: str = "mailgun") -> str:
    return f"{relay.base}/api/v1/provider-events/{tenant.slug}/{name}"


async def stored_events(relay: Relay, tenant: Tenant) -> int:
    runtime: Runtime = relay.app.state.runtime
    async with runtime.db.session() as session:
        query = select(func.count()).where(ProviderEventRecord.client_id == tenant.id)  # type: ignore[arg-type]
        return int((await session.execute(query)).scalar_one())


async def delivery_of(relay: Relay, tenant: Tenant, notification_id: str) -> dict[str, Any]:
    r = await relay.api.http.get(f"/api/v1/notifications/{notification_id}", headers=tenant.auth)
    [delivery] = r.json()["deliveries"]
    return dict(delivery, notification_status=r.json()["status"])


async def test_delivered_through_mailgun_with_the_delivery_id(
    relay: Relay, fake: FakeMailgun
) -> None:
    tenant = await mailgun_tenant(relay, fake)
    done = await delivered(relay, tenant)
    assert done["status"] == "delivered", (done, fake.refused)
    [delivery] = done["deliveries"]
    assert fake.recipient(ADDRESS).variables["delivery_id"] == delivery["id"]
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert attempt["served_by"] == "mailgun" and attempt["response_code"] == 200


async def test_a_hard_bounce_bounces_the_delivery_and_skips_the_next_send(
    relay: Relay, fake: FakeMailgun
) -> None:
    tenant = await mailgun_tenant(relay, fake)
    first = await delivered(relay, tenant)
    data = fake.event_data(ADDRESS, "failed", severity="permanent")
    r = await post_event(events_url(relay, tenant), data, signature(SIGNING_KEY))
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 1, "stored": 1, "duplicates": 0}
    moved = await delivery_of(relay, tenant, first["id"])
    assert moved["status"] == "bounced" and "No such mailbox" in moved["last_error"]
    assert moved["notification_status"] == "failed"
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    [entry] = listed["data"]
    assert (entry["address"], entry["reason"], entry["provider"]) == (
        ADDRESS,
        "hard_bounce",
        "mailgun",
    )
    # The next send to the address is skipped at expansion: nothing reaches Mailgun.
    calls = len(fake.calls)
    again = await mail(relay, tenant, ADDRESS.upper())
    [skipped] = again["deliveries"]
    assert skipped["status"] == "skipped"
    assert skipped["skip_reason"] == "suppressed: hard bounce"
    assert len(fake.calls) == calls
    # Lifted: sends go out again; lifting twice is a 404.
    gone = await relay.api.http.delete(f"/api/v1/suppressions/{ADDRESS}", headers=tenant.auth)
    assert gone.status_code == 204
    twice = await relay.api.http.delete(f"/api/v1/suppressions/{ADDRESS}", headers=tenant.auth)
    assert twice.status_code == 404
    assert twice.headers["content-type"] == "application/problem+json"
    assert (await delivered(relay, tenant))["status"] == "delivered"


async def test_a_complaint_marks_the_delivery_and_suppresses(
    relay: Relay, fake: FakeMailgun
) -> None:
    tenant = await mailgun_tenant(relay, fake)
    first = await delivered(relay, tenant)
    data = fake.event_data(ADDRESS, "complained")
    r = await post_event(events_url(relay, tenant), data, signature(SIGNING_KEY))
    assert r.status_code == 200, r.text
    moved = await delivery_of(relay, tenant, first["id"])
    # It did arrive: the notification stays delivered.
    assert (moved["status"], moved["notification_status"]) == ("complained", "delivered")
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    assert [(s["address"], s["reason"]) for s in listed["data"]] == [(ADDRESS, "complaint")]
    [skipped] = (await mail(relay, tenant))["deliveries"]
    assert skipped["skip_reason"] == "suppressed: complaint"


@pytest.mark.parametrize(
    "sig",
    [
        None,  # unsigned
        signature("not-the-signing-key"),  # wrongly signed
        signature(SIGNING_KEY, timestamp=str(int(time.time()) - 600)),  # stale
        {"timestamp": "1", "token": "x", "signature": ""},  # garbage
    ],
)
async def test_refused_events_are_401_and_store_nothing(
    relay: Relay, fake: FakeMailgun, sig: dict[str, str] | None
) -> None:
    tenant = await mailgun_tenant(relay, fake)
    first = await delivered(relay, tenant)
    data = fake.event_data(ADDRESS, "failed", severity="permanent")
    r = await post_event(events_url(relay, tenant), data, sig)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await stored_events(relay, tenant) == 0
    assert (await delivery_of(relay, tenant, first["id"]))["status"] == "delivered"
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    assert listed["data"] == []


async def test_a_duplicate_is_stored_once_and_a_replayed_token_refused(
    relay: Relay, fake: FakeMailgun
) -> None:
    tenant = await mailgun_tenant(relay, fake)
    await delivered(relay, tenant)
    data = fake.event_data(ADDRESS, "delivered")
    sig = signature(SIGNING_KEY)
    first = await post_event(events_url(relay, tenant), data, sig)
    again = await post_event(events_url(relay, tenant), data, sig)
    assert first.json()["stored"] == 1
    assert again.status_code == 200 and again.json() == {
        "received": 1,
        "stored": 0,
        "duplicates": 1,
    }
    assert await stored_events(relay, tenant) == 1
    # The same signature on another event: Mailgun's signature does not cover the body.
    forged = fake.event_data(ADDRESS, "failed", severity="permanent")
    replayed = await post_event(events_url(relay, tenant), forged, sig)
    assert replayed.status_code == 401, replayed.text
    assert await stored_events(relay, tenant) == 1


async def test_unknown_tenant_or_provider_is_one_404(relay: Relay, fake: FakeMailgun) -> None:
    tenant = await mailgun_tenant(relay, fake)
    data = {"event": "delivered", "id": "x", "recipient": ADDRESS}
    wrong_name = await post_event(events_url(relay, tenant, "nope"), data, signature(SIGNING_KEY))
    wrong_slug = await post_event(
        f"{relay.base}/api/v1/provider-events/no-such-tenant/mailgun", data, signature(SIGNING_KEY)
    )
    assert wrong_name.status_code == wrong_slug.status_code == 404
    assert wrong_name.json()["detail"] == wrong_slug.json()["detail"]


async def test_the_primary_answering_500_fails_over_in_the_same_attempt(
    relay: Relay, fake: FakeMailgun
) -> None:
    async with running_mailgun() as backup:
        tenant = await relay.api.tenant()
        await add_mailgun(relay, tenant, fake, "mailgun")
        await add_mailgun(relay, tenant, backup, "mailgun-backup")
        await route(relay, tenant, ["mailgun", "mailgun-backup"])
        fake.answer(500, always=True)
        done = await delivered(relay, tenant)
        assert done["status"] == "delivered"
        [attempt] = await attempts(relay.api, tenant, done["id"])
        assert attempt["served_by"] == "mailgun-backup"
        assert attempt["error"].startswith("mailgun: HTTP 500")
        assert [c.status for c in fake.calls] == [500]
        assert [r.address for r in backup.recipients()] == [ADDRESS]
