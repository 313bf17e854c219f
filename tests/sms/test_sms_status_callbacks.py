"""Twilio's status callbacks through `POST /provider-events/{client_slug}/{provider_name}`
(the embedded relay, both databases): the service sits behind a proxy — Twilio calls
PUBLIC_BASE_URL, which is not where the relay listens — so the signature holds only if the
endpoint checks it against the public URL. Delivered keeps `delivered`; an undeliverable
number fails the delivery and suppresses the number, so the next send skips it; unsigned or
tampered callbacks are 401 and store nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.notifications.relay import Relay
from tests.sms.test_sms_e2e import PHONE, sent_and_done, sms_tenant, sms_to
from tests.sms.test_sms_e2e import fake as _fake_twilio
from tests.sms.test_sms_e2e import relay as _public_relay
from tests.support.api import Tenant
from tests.support.fake_twilio import FakeTwilio, SignedCallback

# The same fixtures as the e2e module's (a relay whose PUBLIC_BASE_URL is elsewhere).
relay = _public_relay
fake = _fake_twilio


async def _post(relay: Relay, callback: SignedCallback, **change: Any) -> httpx.Response:
    # Where the proxy forwards it: the relay's own address, the path and query as called.
    called = urlsplit(callback.url)
    headers = {**callback.headers, **change.pop("headers", {})}
    body = change.pop("body", callback.body)
    return await relay.api.http.post(
        f"{relay.base}{called.path}?{called.query}", content=body, headers=headers
    )


async def _events(relay: Relay, tenant: Tenant) -> dict[str, Any]:
    r = await relay.api.http.get("/api/v1/analytics/summary", headers=tenant.auth)
    assert r.status_code == 200, r.text
    providers = r.json()["providers"]
    return dict(providers.get("twilio", {}).get("events", {}))


async def _delivery(relay: Relay, tenant: Tenant, notification_id: str) -> dict[str, Any]:
    r = await relay.api.http.get(f"/api/v1/notifications/{notification_id}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    [delivery] = r.json()["deliveries"]
    return dict(delivery)


async def test_a_delivered_callback_is_verified_on_the_public_url_and_stored_once(
    relay: Relay,
    fake: FakeTwilio,
) -> None:
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    user = await relay.api.user(tenant, phone=PHONE)
    done = await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))
    [message] = fake.messages
    callback = fake.callback(message, "delivered")

    first = await _post(relay, callback)
    again = await _post(relay, callback)  # Twilio retries: stored once

    assert first.status_code == 200, first.text
    assert first.json() == {"received": 1, "stored": 1, "duplicates": 0}
    assert again.json() == {"received": 1, "stored": 0, "duplicates": 1}
    assert (await _delivery(relay, tenant, done["id"]))["status"] == "delivered"
    assert await _events(relay, tenant) == {"delivered": 1}


async def test_an_undeliverable_number_fails_and_is_suppressed_for_the_next_send(
    relay: Relay,
    fake: FakeTwilio,
) -> None:
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    user = await relay.api.user(tenant, phone=PHONE)
    done = await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))
    [message] = fake.messages

    r = await _post(relay, fake.callback(message, "undelivered", 30006))  # a landline

    assert r.status_code == 200, r.text
    delivery = await _delivery(relay, tenant, done["id"])
    assert delivery["status"] == "failed", delivery
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    [entry] = listed["data"]
    assert (entry["address"], entry["channel"], entry["reason"]) == (PHONE, "sms", "undeliverable")

    later = await relay.api.http.post(
        "/api/v1/notifications/send", json=sms_to({"user_id": user["id"]}), headers=tenant.auth
    )
    assert later.status_code == 202, later.text
    [skipped] = later.json()["deliveries"]
    assert (skipped["status"], skipped["skip_reason"]) == ("skipped", "suppressed: undeliverable")
    assert len(fake.messages) == 1  # never sent

    gone = await relay.api.http.delete(f"/api/v1/suppressions/{quote(PHONE)}", headers=tenant.auth)
    assert gone.status_code == 204, gone.text
    resent = await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))
    assert resent["status"] == "delivered" and len(fake.messages) == 2


@pytest.mark.parametrize("forgery", ["unsigned", "tampered", "other_account"])
async def test_a_callback_twilio_did_not_sign_is_401_and_stores_nothing(
    relay: Relay,
    fake: FakeTwilio,
    forgery: str,
) -> None:
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    user = await relay.api.user(tenant, phone=PHONE)
    done = await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))
    [message] = fake.messages
    callback = fake.callback(message, "undelivered", 30006)
    if forgery == "unsigned":
        r = await _post(relay, callback, headers={"x-twilio-signature": ""})
    elif forgery == "tampered":
        # A valid signature of "delivered", replayed over a changed status.
        signed = fake.callback(message, "delivered")
        r = await _post(
            relay, callback, headers={"x-twilio-signature": signed.headers["x-twilio-signature"]}
        )
    else:
        stranger = fake.account()
        forged = SignedCallback(callback.url, callback.form, dict(callback.headers))
        forged.headers["x-twilio-signature"] = RequestValidator(
            stranger.auth_token
        ).compute_signature(callback.url, callback.form)
        r = await _post(relay, forged)

    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await _delivery(relay, tenant, done["id"]))["status"] == "delivered"
    assert await _events(relay, tenant) == {}
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    assert listed["data"] == []
    # The sentinel: a genuine callback right after is accepted, so the refusals were refusals.
    ok = await _post(relay, fake.callback(message, "delivered"))
    assert ok.status_code == 200 and await _events(relay, tenant) == {"delivered": 1}


async def test_the_same_callback_without_a_public_base_url_would_not_verify(
    relay: Relay,
    fake: FakeTwilio,
) -> None:
    """The proxy case's control: signed for the relay's own URL instead of the public one,
    the callback is refused, so the public URL is what the check uses."""
    tenant, _ = await sms_tenant(relay, fake, "twilio")
    user = await relay.api.user(tenant, phone=PHONE)
    await sent_and_done(relay, tenant, sms_to({"user_id": user["id"]}))
    [message] = fake.messages
    callback = fake.callback(message, "delivered")
    called = urlsplit(callback.url)
    internal = f"{relay.base}{called.path}?{called.query}"
    token = fake.accounts[message.account_sid].auth_token
    signature = RequestValidator(token).compute_signature(internal, callback.form)
    r = await _post(relay, callback, headers={"x-twilio-signature": signature})
    assert r.status_code == 401, r.text
