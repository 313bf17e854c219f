"""The sms channel end to end (the embedded relay — API and in-process worker — on both
databases) through the tenant's twilio providers, configured with /providers and
/routing/sms, to the fake Twilio: delivered with its status callback URL, a user without a
phone skipped, an invalid number failed without failing over, a failing account failed
over within the attempt, phone recipients, preferences and analytics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from app.main import create_app
from tests.channels.receiver import Receiver, running_receiver
from tests.conftest import make_settings
from tests.notifications.relay import (
    RELAY_SETTINGS,
    Relay,
    add_endpoint,
    attempts,
    send,
    wait_for_status,
)
from tests.support.api import Api, Tenant, bearer
from tests.support.fake_twilio import FakeTwilio, TwilioAccount, running_twilio
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process
from tests.support.realtime import until

PUBLIC = "https://chat.example.com"
PHONE = "+14155550100"
TEXT = {"text": "Your order A-1 has shipped"}


@pytest.fixture
async def relay(db_url: str) -> AsyncIterator[Relay]:
    settings = make_settings(db_url, **RELAY_SETTINGS, PUBLIC_BASE_URL=PUBLIC)
    app = create_app(settings)
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
    ):
        yield Relay(Api(http, app=app), base, app)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with running_twilio() as fake:
        yield fake


async def add_twilio(
    relay: Relay, tenant: Tenant, fake: FakeTwilio, name: str, who: TwilioAccount
) -> dict[str, Any]:
    body = {
        "name": name,
        "type": "twilio",
        "settings": {
            "account_sid": who.sid,
            "auth_token": who.auth_token,
            "from_number": "+15005550006",
            "base_url": fake.base_url,
        },
    }
    r = await relay.api.http.post("/api/v1/providers", json=body, headers=tenant.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def route(relay: Relay, tenant: Tenant, providers: list[str]) -> None:
    r = await relay.api.http.put(
        "/api/v1/routing/sms", json={"providers": providers}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text


async def sms_tenant(relay: Relay, fake: FakeTwilio, *names: str) -> tuple[Tenant, list[Any]]:
    """A tenant routing sms through one fake Twilio account per name, in that order."""
    tenant = await relay.api.tenant()
    accounts = []
    for name in names or ("twilio",):
        who = fake.account()
        await add_twilio(relay, tenant, fake, name, who)
        accounts.append(who)
    await route(relay, tenant, list(names or ("twilio",)))
    return tenant, accounts


def sms_to(*recipients: dict[str, str]) -> dict[str, Any]:
    return {"channels": ["sms"], "recipients": list(recipients), "sms": TEXT}


async def sent_and_done(relay: Relay, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    sent = await send(relay.api, tenant, body)
    return await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})


async def test_an_sms_is_delivered_through_twilio(relay: Relay, fake: FakeTwilio) -> None:
    tenant, [who] = await sms_tenant(relay, fake, "twilio-main")
    secret = await add_twilio(relay, tenant, fake, "spare", fake.account())
    assert "auth_token" not in secret["settings"] and secret["secret_fields"] == ["auth_token"]
    user = await relay.api.user(tenant, phone=PHONE)

    done = await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))

    assert done["status"] == "delivered", done
    [delivery] = done["deliveries"]
    assert delivery["recipient"]["phone"] == PHONE
    [message] = fake.messages
    assert (message.account_sid, message.to) == (who.sid, PHONE)
    assert message.form["Body"] == TEXT["text"]
    assert message.form["StatusCallback"] == (
        f"{PUBLIC}/api/v1/provider-events/{tenant.slug}/twilio-main?delivery_id={delivery['id']}"
    )
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert (attempt["served_by"], attempt["response_code"]) == ("twilio-main", 201)
    assert attempt["reply"] == message.sid


async def test_a_user_without_a_phone_is_skipped(relay: Relay, fake: FakeTwilio) -> None:
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    user = await relay.api.user(tenant)
    sent = await send(relay.api, tenant, sms_to({"user_id": user["id"]}))
    [delivery] = sent["deliveries"]
    assert delivery["status"] == "skipped"
    assert delivery["skip_reason"] == "the user has no phone number"


async def test_phone_recipients_and_addresses_find_their_channels(
    relay: Relay, fake: FakeTwilio
) -> None:
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    body = {
        "channels": ["sms", "email"],
        "recipients": [{"phone": "+14155550123"}, {"email": "ops@example.com"}],
        "sms": TEXT,
        "email": {"subject": "Shipped", "text": "On its way"},
    }
    sent = await send(relay.api, tenant, body)
    by_channel = {(d["channel"], *d["recipient"].values()): d for d in sent["deliveries"]}
    assert by_channel[("email", "+14155550123")]["skip_reason"] == (
        "a phone number receives only the sms channel"
    )
    assert by_channel[("sms", "ops@example.com")]["status"] == "skipped"
    phone_delivery = by_channel[("sms", "+14155550123")]
    await wait_for_status(relay.api, tenant, sent["id"], {"partial", "delivered", "failed"})
    [message] = fake.messages
    assert message.to == "+14155550123"
    assert message.form["StatusCallback"].endswith(f"delivery_id={phone_delivery['id']}")


async def test_an_invalid_number_fails_without_failing_over(
    relay: Relay, fake: FakeTwilio, receiver: Receiver
) -> None:
    tenant, [first, _] = await sms_tenant(relay, fake, "primary", "backup")
    _, ops_secret = await add_endpoint(
        relay.app, tenant, receiver.url("/ops"), ["delivery.exhausted"]
    )
    fake.invalid_numbers.add("+14155550199")

    done = await sent_and_done(relay, tenant, sms_to({"phone": "+14155550199"}))

    assert done["status"] == "failed", done
    [delivery] = done["deliveries"]
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert (attempt["outcome"], attempt["served_by"]) == ("failed", "primary")
    assert "21211" in attempt["error"]
    # Asked once, at the first account only: the second would have refused it too.
    assert fake.requests == [(first.sid, "400 21211")]
    assert fake.messages == []
    # The dead letter is announced like any channel's.
    await until(lambda: "/ops" in receiver.paths(), "delivery.exhausted webhook", 10)
    ops = next(r for r in receiver.requests if r.path == "/ops")
    event = Webhook(ops_secret).verify(ops.body, ops.headers)
    assert event["type"] == "delivery.exhausted"
    assert event["data"]["delivery_id"] == delivery["id"]
    assert event["data"]["channel"] == "sms"
    assert event["data"]["recipient"] == {"phone": "+14155550199"}


async def test_a_failing_account_fails_over_in_the_same_attempt(
    relay: Relay, fake: FakeTwilio
) -> None:
    tenant, [first, second] = await sms_tenant(relay, fake, "primary", "backup")
    fake.fail(first.sid, 500)
    user = await relay.api.user(tenant, phone=PHONE)

    done = await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))

    assert done["status"] == "delivered", done
    [delivery] = done["deliveries"]
    assert delivery["attempts"] == 1
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert (attempt["outcome"], attempt["served_by"]) == ("delivered", "backup")
    assert attempt["error"].startswith("primary: HTTP 500")
    assert [m.account_sid for m in fake.messages] == [second.sid]
    assert (
        fake.messages[0]
        .form["StatusCallback"]
        .startswith(f"{PUBLIC}/api/v1/provider-events/{tenant.slug}/backup?")
    )


async def test_a_tenant_without_sms_providers_fails_with_the_reason(relay: Relay) -> None:
    tenant = await relay.api.tenant()
    done = await sent_and_done(relay, tenant, sms_to({"phone": PHONE}))
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert attempt["error"] == "no SMS provider is configured"


async def test_preferences_and_analytics_know_the_sms_channel(
    relay: Relay, fake: FakeTwilio
) -> None:
    api = relay.api
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    user = await api.user(tenant, phone=PHONE)
    auth = bearer(await api.login(tenant, user["id"]))
    await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))
    off = await api.http.put(
        "/api/v1/me/preferences", json={"channels": {"sms": False}}, headers=auth
    )
    assert off.status_code == 200, off.text
    muted = await send(api, tenant, sms_to({"user_id": user["id"]}))
    [delivery] = muted["deliveries"]
    assert delivery["status"] == "skipped" and "preference" in delivery["skip_reason"]
    summary = (await api.http.get("/api/v1/analytics/summary", headers=tenant.auth)).json()
    assert summary["deliveries"]["by_channel"]["sms"] == {"delivered": 1, "skipped": 1}, summary
    assert len(fake.messages) == 1


async def test_sms_content_is_checked(relay: Relay, fake: FakeTwilio) -> None:
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    for content in ({}, {"text": ""}, {"text": "x" * 1601}, {"text": "hi", "media": "x"}):
        r = await relay.api.http.post(
            "/api/v1/notifications/send",
            json={"channels": ["sms"], "recipients": [{"phone": PHONE}], "sms": content},
            headers=tenant.auth,
        )
        assert r.status_code == 422, (content, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await relay.api.http.post(
        "/api/v1/notifications/send",
        json={"channels": ["sms"], "recipients": [{"phone": "+1 415 555"}], "sms": TEXT},
        headers=tenant.auth,
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert fake.messages == []
