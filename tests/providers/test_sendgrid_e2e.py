"""E-mail through the `sendgrid` provider type, end to end against a fake SendGrid on
127.0.0.1: the e-mail channel sends 1,500 deliveries in two Mail Send requests; through the
embedded relay (API + in-process worker, on SQLite and PostgreSQL) a provider created with
`/providers` delivers a 1,500-recipient notification, a primary answering 500 fails over to
the second provider within the same attempt, and the events SendGrid would post for what
was sent verify and name the deliveries."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.channels.email import EmailChannel, EmailTarget
from app.core.clock import utcnow
from app.core.ids import new_id
from app.main import create_app
from app.providers.base import ProviderAccount, SignedRequest
from app.providers.builtin.push_http import GuardedHttp
from app.providers.builtin.sendgrid import SendGridProvider, SendGridSettings
from tests.channels.conftest import context
from tests.conftest import make_settings
from tests.notifications.relay import (
    RELAY_SETTINGS,
    Relay,
    attempts,
    send,
    wait_for_status,
)
from tests.support.api import Api, Tenant
from tests.support.fake_sendgrid import FakeSendGrid, running_sendgrid
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process

CONTENT = {"subject": "Spring sale", "text": "20% off", "html": "<p>20% off</p>"}
RECIPIENTS = 1500


@pytest.fixture
async def relay(db_url: str) -> AsyncIterator[Relay]:
    """The embedded relay; its e-mail quota lifted past the bulk send it is given."""
    settings = make_settings(
        db_url,
        **{
            **RELAY_SETTINGS,
            # The fake parses 1,000-personalization requests on this test's loop: on a loaded
            # CI box that can pass the relay's 2 s, and a timed-out request is retried (the
            # test counts requests).
            "WEBHOOK_TIMEOUT_SECONDS": 30,
            "DELIVERY_LEASE_SECONDS": 60,  # must exceed the longest channel timeout
        },
        RATE_LIMIT_EMAILS_PER_HOUR=100_000,
    )
    app = create_app(settings)
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
    ):
        yield Relay(Api(http, app=app), base, app)


@pytest.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with running_sendgrid() as fake:
        yield fake


@pytest.fixture
async def backup() -> AsyncIterator[FakeSendGrid]:
    async with running_sendgrid() as fake:
        yield fake


def settings_of(fake: FakeSendGrid) -> dict[str, Any]:
    return {
        "api_key": fake.api_key,
        "from_email": "news@shop.example",
        "from_name": "Shop",
        "base_url": fake.base_url,
        "webhook_public_key": fake.public_key,
    }


async def add_sendgrid(relay: Relay, tenant: Tenant, name: str, fake: FakeSendGrid) -> str:
    body = {"name": name, "type": "sendgrid", "settings": settings_of(fake)}
    r = await relay.api.http.post("/api/v1/providers", json=body, headers=tenant.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["channel"] == "email" and created["secret_fields"] == ["api_key"]
    assert "api_key" not in created["settings"] and fake.api_key not in r.text
    return str(created["id"])


async def route(relay: Relay, tenant: Tenant, *providers: str) -> None:
    r = await relay.api.http.put(
        "/api/v1/routing/email", json={"providers": list(providers)}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text


async def test_the_channel_sends_1500_deliveries_in_two_requests(sendgrid: FakeSendGrid) -> None:
    provider = SendGridProvider(GuardedHttp(allow_private=True, timeout=10, ca_file=None))
    channel = EmailChannel(provider_types={"sendgrid": provider})
    settings = SendGridSettings.model_validate(settings_of(sendgrid))
    account = ProviderAccount(new_id(), "c1", "bulk", "sendgrid", "email", settings)
    targets = [
        EmailTarget(new_id(), "c1", email=f"user{n}@example.com", chain=(account,))
        for n in range(RECIPIENTS)
    ]
    ctx = context()
    try:
        outcomes = await channel.send_batch(targets, [CONTENT] * RECIPIENTS, [ctx] * RECIPIENTS)
    finally:
        await channel.aclose()
        await provider.aclose()

    assert sorted(len(c.recipients) for c in sendgrid.calls) == [500, 1000]
    assert [c.status for c in sendgrid.calls] == [202, 202], sendgrid.refused
    sent_ids = [
        p["custom_args"]["delivery_id"] for c in sendgrid.calls for p in c.body["personalizations"]
    ]
    assert sorted(sent_ids) == sorted(t.delivery_id for t in targets)
    assert all(o.delivered and o.served_by == "bulk" for o in outcomes)


async def test_a_1500_recipient_notification_is_delivered_through_sendgrid(
    relay: Relay, sendgrid: FakeSendGrid
) -> None:
    api = relay.api
    tenant = await api.tenant()
    provider_id = await add_sendgrid(relay, tenant, "sendgrid", sendgrid)
    await route(relay, tenant, "sendgrid")
    r = await api.http.post(f"/api/v1/providers/{provider_id}/test", json={}, headers=tenant.auth)
    assert r.status_code == 200 and "mail.send" in r.json()["detail"], r.text

    body = {
        "channels": ["email"],
        "recipients": [{"email": f"user{n}@example.com"} for n in range(RECIPIENTS)],
        "email": CONTENT,
    }
    sent = await send(api, tenant, body)
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"}, timeout=120)

    assert done["status"] == "delivered", sendgrid.refused
    deliveries = {d["id"]: d for d in done["deliveries"]}
    assert len(deliveries) == RECIPIENTS
    assert {d["status"] for d in deliveries.values()} == {"delivered"}
    # Each delivery went out once, as one personalization naming it, in two requests: the
    # worker hands the e-mail channel up to 1,000 deliveries at once (its batch_size), and
    # SendGrid takes up to 1,000 personalizations per request.
    calls = sendgrid.accepted
    assert calls == sendgrid.calls
    assert sorted(len(c.recipients) for c in calls) == [500, 1000]
    carried = Counter(
        p["custom_args"]["delivery_id"] for c in calls for p in c.body["personalizations"]
    )
    assert set(carried) == set(deliveries) and set(carried.values()) == {1}
    assert all(c.body["from"] == {"email": "news@shop.example", "name": "Shop"} for c in calls)

    # What SendGrid would post back for the first request verifies and names its deliveries.
    first = calls[0]
    headers, events_body = sendgrid.signed(
        sendgrid.events_for(first, "delivered", int(utcnow().timestamp())),
        int(utcnow().timestamp()),
    )
    provider = relay.app.state.runtime.provider_types["sendgrid"]
    account = ProviderAccount(
        provider_id,
        tenant.id,
        "sendgrid",
        "sendgrid",
        "email",
        SendGridSettings.model_validate(settings_of(sendgrid)),
    )
    events = provider.verify_events(
        account,
        SignedRequest(
            "https://relay.example/",
            {k.lower(): v for k, v in headers.items()},
            events_body,
            utcnow(),
        ),
    )
    assert {e.delivery_id for e in events} == {
        p["custom_args"]["delivery_id"] for p in first.body["personalizations"]
    }
    assert {e.kind for e in events} == {"delivered"}


async def test_a_primary_answering_500_fails_over_within_the_same_attempt(
    relay: Relay, sendgrid: FakeSendGrid, backup: FakeSendGrid
) -> None:
    api = relay.api
    tenant = await api.tenant()
    await add_sendgrid(relay, tenant, "primary", sendgrid)
    await add_sendgrid(relay, tenant, "secondary", backup)
    await route(relay, tenant, "primary", "secondary")
    sendgrid.fail(500, message="Internal Server Error")

    body = {
        "channels": ["email"],
        "recipients": [{"email": "a@example.com"}, {"email": "b@example.com"}],
        "email": CONTENT,
    }
    sent = await send(api, tenant, body)
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})

    assert done["status"] == "delivered", done
    assert {d["attempts"] for d in done["deliveries"]} == {1}
    tried = await attempts(api, tenant, sent["id"])
    assert len(tried) == 2
    for attempt in tried:
        assert (attempt["outcome"], attempt["served_by"]) == ("delivered", "secondary")
        assert attempt["error"] == "primary: HTTP 500: Internal Server Error"
    [failed] = sendgrid.calls
    assert failed.status == 500
    [delivered] = backup.calls
    assert delivered.status == 202
    assert sorted(delivered.recipients) == ["a@example.com", "b@example.com"]
