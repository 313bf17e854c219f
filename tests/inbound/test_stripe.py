"""The `stripe` scheme against Stripe's own library: headers made by stripe-python's
`WebhookSignature.generate_signature_header` (its helper for signing test payloads), each
case first judged by stripe-python's `WebhookSignature.verify_header`, so what the endpoint
accepts and refuses is what Stripe's verifier accepts and refuses."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
import stripe

from app.inbound.signatures import SignatureInvalid
from app.inbound.signatures import stripe as our_stripe
from tests.inbound import signing
from tests.inbound.conftest import count_events, make_hook, post
from tests.inbound.test_processing import messages_of, settled, worker_api
from tests.support.api import Api

__all__ = ["worker_api"]

# Stripe's documented default tolerance, also the endpoint's default.
TOLERANCE = 300

# A trimmed `invoice.payment_failed` event (https://docs.stripe.com/api/events/object),
# with non-ASCII text: Stripe signs the UTF-8 text, the endpoint checks the raw bytes.
EVENT: dict[str, Any] = {
    "id": "evt_1QpStripeProof",
    "object": "event",
    "type": "invoice.payment_failed",
    "data": {
        "object": {
            "id": "in_1QpInvoice",
            "object": "invoice",
            "customer": "cus_Jorg",
            "customer_name": "Jörg Müller",
            "amount_due": 2000,
            "currency": "eur",
        }
    },
}

TEMPLATE = {
    "content": "Payment failed for {{ body.data.object.customer_name }}: "
    "{{ body.data.object.amount_due // 100 }} {{ body.data.object.currency | upper }}",
    "metadata": {"invoice": "{{ body.data.object.id }}"},
    "room": {
        "key": "{{ body.data.object.customer }}",
        "name": "Billing {{ body.data.object.customer }}",
        "type": "support",
    },
}


def stripe_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature` as stripe-python makes it for a payload."""
    return str(
        stripe.WebhookSignature.generate_signature_header(
            payload.decode(), secret, timestamp=timestamp
        )
    )


def stripe_accepts(payload: bytes, header: str, secret: str) -> bool:
    """Whether stripe-python's verifier accepts the request (with Stripe's tolerance)."""
    try:
        return bool(
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=TOLERANCE)
        )
    except stripe.SignatureVerificationError:
        return False


async def test_stripe_signed_event_is_processed_and_what_stripe_refuses_is_401(
    worker_api: Api,
) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api, tenant, name="stripe", scheme="stripe", action="message", config={"template": TEMPLATE}
    )
    secret = hook["secret"]
    body = signing.dumps(EVENT)
    now = int(time.time())
    valid = stripe_header(body, secret)
    refused = {
        "stale timestamp": (body, stripe_header(body, secret, timestamp=now - 2 * TOLERANCE)),
        "tampered body": (body.replace(b"2000", b"20"), valid),
        "signed with another secret": (body, stripe_header(body, "whsec_" + "A" * 32)),
        "bad signature": (body, f"t={now},v1={'0' * 64}"),
    }
    for case, (payload, header) in refused.items():
        assert not stripe_accepts(payload, header, secret), f"stripe accepts the {case} case"
        r = await post(
            api,
            hook["url"],
            payload,
            {"Stripe-Signature": header, "content-type": "application/json"},
        )
        assert r.status_code == 401, f"{case}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == "application/problem+json", case
    assert await count_events(api, hook["id"]) == 0

    # Stripe sends test-mode events with an extra `v0` signature; only v1 counts.
    header = f"{valid},v0={'f' * 64}"
    assert stripe_accepts(body, header, secret)
    r = await post(
        api, hook["url"], body, {"Stripe-Signature": header, "content-type": "application/json"}
    )
    assert r.status_code == 202, r.text
    event = await settled(api, tenant, hook["id"], r.json()["id"])
    assert event["status"] == "processed", event
    assert event["dedupe_key"] == EVENT["id"]
    outcome = event["outcome"]
    assert outcome["room_created"] is True and outcome["message_created"] is True
    room = (await api.http.get(f"/api/v1/rooms/{outcome['room_id']}", headers=tenant.auth)).json()
    assert (room["name"], room["type"]) == ("Billing cus_Jorg", "support")
    [message] = await messages_of(api, tenant, outcome["room_id"])
    assert message["content"] == "Payment failed for Jörg Müller: 20 EUR"
    assert message["metadata"] == {"invoice": "in_1QpInvoice"}
    assert await count_events(api, hook["id"]) == 1


@pytest.mark.parametrize("secrets_in_header", [1, 2])
def test_stripe_verifier_and_ours_agree_on_a_rotation_header(secrets_in_header: int) -> None:
    """During a rotation Stripe signs with both secrets (two v1 entries); stripe-python
    accepts the header for either secret, and so does our verifier."""
    old, new = "whsec_old" + "1" * 24, "whsec_new" + "2" * 24
    body = signing.dumps(EVENT)
    at = datetime.now(timezone.utc)
    signers = [new, old][:secrets_in_header]
    header = signing.stripe(signers[0], body, at, *signers[1:])["Stripe-Signature"]
    options = {"tolerance_seconds": TOLERANCE}
    for secret in (new, old):
        ours: bool
        try:
            ours = (
                our_stripe(body, {"stripe-signature": header}, [secret], at, options)
                == (EVENT["id"])
            )
        except SignatureInvalid:
            ours = False
        assert ours == stripe_accepts(body, header, secret) == (secret in signers), secret
