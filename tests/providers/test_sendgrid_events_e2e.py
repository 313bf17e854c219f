"""SendGrid's signed Event Webhook through `POST /provider-events/{client_slug}/{name}` (the
embedded relay, both databases): a hard bounce makes its delivery `bounced` and suppresses
the address for the next send, a spam report `complained`; an unsigned or wrongly signed
batch is 401 and stores nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.clock import utcnow
from tests.notifications.relay import Relay, send, wait_for_status
from tests.providers.test_sendgrid_e2e import add_sendgrid, route
from tests.providers.test_sendgrid_e2e import relay as _relay
from tests.providers.test_sendgrid_e2e import sendgrid as _sendgrid
from tests.support.api import Tenant
from tests.support.fake_sendgrid import SIGNATURE_HEADER, FakeSendGrid, running_sendgrid

relay = _relay
sendgrid = _sendgrid
BOUNCING = "gone@example.com"
FINE = "fine@example.com"


async def _mail(relay: Relay, tenant: Tenant, *to: str) -> dict[str, Any]:
    body = {
        "channels": ["email"],
        "recipients": [{"email": a} for a in to],
        "email": {"subject": "Hi", "text": "Hello"},
    }
    sent = await send(relay.api, tenant, body)
    return await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})


async def _post(
    relay: Relay, tenant: Tenant, headers: dict[str, str], body: bytes
) -> httpx.Response:
    return await relay.api.http.post(
        f"/api/v1/provider-events/{tenant.slug}/sendgrid",
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


def _statuses(done: dict[str, Any]) -> dict[str, str]:
    return {d["recipient"]["email"]: d["status"] for d in done["deliveries"]}


async def _now_statuses(relay: Relay, tenant: Tenant, notification_id: str) -> dict[str, str]:
    r = await relay.api.http.get(f"/api/v1/notifications/{notification_id}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return _statuses(r.json())


async def test_a_hard_bounce_and_a_spam_report_move_deliveries_and_suppress(
    relay: Relay, sendgrid: FakeSendGrid
) -> None:
    tenant = await relay.api.tenant()
    await add_sendgrid(relay, tenant, "sendgrid", sendgrid)
    await route(relay, tenant, "sendgrid")
    done = await _mail(relay, tenant, BOUNCING, FINE)
    assert done["status"] == "delivered", done
    [call] = sendgrid.accepted
    now = int(utcnow().timestamp())
    events = [
        e | {"event": "bounce", "type": "bounce", "reason": "550 5.1.1 no such user"}
        if e["email"] == BOUNCING
        else e | {"event": "spamreport"}
        for e in sendgrid.events_for(call, "delivered", now)
    ]
    headers, body = sendgrid.signed(events, now)

    r = await _post(relay, tenant, headers, body)

    assert r.status_code == 200, r.text
    assert r.json() == {"received": 2, "stored": 2, "duplicates": 0}
    assert await _now_statuses(relay, tenant, done["id"]) == {
        BOUNCING: "bounced",
        FINE: "complained",
    }
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    assert {(s["address"], s["reason"], s["provider"]) for s in listed["data"]} == {
        (BOUNCING, "hard_bounce", "sendgrid"),
        (FINE, "complaint", "sendgrid"),
    }
    later = await send(
        relay.api,
        tenant,
        {
            "channels": ["email"],
            "recipients": [{"email": BOUNCING}],
            "email": {"subject": "Hi again", "text": "Hello"},
        },
    )
    [skipped] = later["deliveries"]
    assert (skipped["status"], skipped["skip_reason"]) == ("skipped", "suppressed: hard bounce")
    assert len(sendgrid.calls) == 1  # nothing more went to SendGrid


@pytest.mark.parametrize("forgery", ["unsigned", "wrong_key", "tampered"])
async def test_a_batch_sendgrid_did_not_sign_is_401_and_stores_nothing(
    relay: Relay, sendgrid: FakeSendGrid, forgery: str
) -> None:
    tenant = await relay.api.tenant()
    await add_sendgrid(relay, tenant, "sendgrid", sendgrid)
    await route(relay, tenant, "sendgrid")
    done = await _mail(relay, tenant, BOUNCING)
    [call] = sendgrid.accepted
    now = int(utcnow().timestamp())
    bounce = sendgrid.events_for(call, "bounce", now, type="bounce")
    headers, body = sendgrid.signed(bounce, now)
    if forgery == "unsigned":
        headers = {}
    elif forgery == "wrong_key":
        async with running_sendgrid() as other:
            headers, body = other.signed(bounce, now)
    else:
        body = body.replace(b"bounce", b"delivered", 1)

    r = await _post(relay, tenant, headers, body)

    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await _now_statuses(relay, tenant, done["id"]) == {BOUNCING: "delivered"}
    listed = (await relay.api.http.get("/api/v1/suppressions", headers=tenant.auth)).json()
    assert listed["data"] == []
    # The sentinel: the genuine batch is then accepted and moves the delivery.
    headers, body = sendgrid.signed(bounce, now)
    assert SIGNATURE_HEADER in headers
    ok = await _post(relay, tenant, headers, body)
    assert ok.status_code == 200, ok.text
    assert await _now_statuses(relay, tenant, done["id"]) == {BOUNCING: "bounced"}
