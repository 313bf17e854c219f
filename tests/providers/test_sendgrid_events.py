"""The `sendgrid` type's Event Webhook verification: batches signed by the fake SendGrid
(ECDSA P-256, a key made for the test) are accepted, and SendGrid's own verifier
(`sendgrid.helpers.eventwebhook.EventWebhook`) agrees; unsigned, wrongly signed, tampered
and stale ones are refused; events map to delivery statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from app.providers.base import ProviderAccount, SignatureRefused, SignedRequest
from app.providers.builtin.push_http import GuardedHttp
from app.providers.builtin.sendgrid import SendGridProvider, SendGridSettings
from tests.support.fake_sendgrid import SIGNATURE_HEADER, TIMESTAMP_HEADER, FakeSendGrid, MailCall

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
STAMP = int(NOW.timestamp())
URL = "https://relay.example/api/v1/provider-events/shop/sg"


@pytest.fixture
async def provider() -> AsyncIterator[SendGridProvider]:
    p = SendGridProvider(GuardedHttp(allow_private=True, timeout=5, ca_file=None))
    yield p
    await p.aclose()


def account(public_key: str | None) -> ProviderAccount:
    settings = SendGridSettings.model_validate(
        {
            "api_key": "SG.k.s",
            "from_email": "relay@shop.example",
            "webhook_public_key": public_key,
        }
    )
    return ProviderAccount("p1", "c1", "sg", "sendgrid", "email", settings)


def sent(*deliveries: str) -> MailCall:
    """A Mail Send request the fake accepted, with one personalization per delivery."""
    body = {
        "personalizations": [
            {"to": [{"email": f"{d}@example.com"}], "custom_args": {"delivery_id": d}}
            for d in deliveries
        ]
    }
    return MailCall(body, {}, 202, "14c5d75ce93dfd64b469")


def request(headers: dict[str, str], body: bytes, now: datetime = NOW) -> SignedRequest:
    return SignedRequest(URL, {k.lower(): v for k, v in headers.items()}, body, now)


def test_a_signed_batch_is_accepted_and_sendgrids_verifier_agrees(
    provider: SendGridProvider,
) -> None:
    fake = FakeSendGrid()
    call = sent("d1", "d2", "d3", "d4", "d5", "d6")
    events: list[dict[str, Any]] = [
        *fake.events_for(call, "processed", STAMP)[:1],
        fake.events_for(call, "delivered", STAMP, response="250 OK")[0],
        fake.events_for(
            call, "bounce", STAMP, type="bounce", status="5.1.1", reason="no such user"
        )[1],
        fake.events_for(
            call, "bounce", STAMP, type="blocked", status="4.7.1", reason="blocklisted"
        )[2],
        fake.events_for(call, "dropped", STAMP, reason="Bounced Address")[3],
        fake.events_for(call, "spamreport", STAMP)[4],
        fake.events_for(call, "open", STAMP)[5],
        fake.events_for(call, "deferred", STAMP)[5],
    ]
    headers, body = fake.signed(events, STAMP)

    # SendGrid's own library verifies the fake's signature with the key as its console shows it.
    assert EventWebhook(fake.public_key).verify_signature(
        body.decode(),
        headers[EventWebhookHeader.SIGNATURE],
        headers[EventWebhookHeader.TIMESTAMP],
    )
    verified = provider.verify_events(account(fake.public_key), request(headers, body))

    assert [(e.kind, e.delivery_id, e.permanent) for e in verified] == [
        ("delivered", "d1", False),
        ("bounced", "d2", True),
        ("bounced", "d3", False),
        ("failed", "d4", False),
        ("complained", "d5", False),
    ]
    assert [e.event_id for e in verified] == [e["sg_event_id"] for e in events[1:6]]
    assert verified[0].address == "d1@example.com"
    assert verified[0].occurred_at == NOW
    assert verified[0].detail == "250 OK"
    assert verified[1].detail == "bounce 5.1.1 no such user"
    assert verified[3].detail == "Bounced Address"
    assert verified[0].payload == events[1]


def test_events_without_an_id_or_a_delivery_still_dedupe(provider: SendGridProvider) -> None:
    fake = FakeSendGrid()
    event = {"email": "x@example.com", "event": "delivered", "timestamp": STAMP}
    headers, body = fake.signed([event, dict(event), "not an event"], STAMP)  # type: ignore[list-item]
    first, second = provider.verify_events(account(fake.public_key), request(headers, body))
    assert first.delivery_id is None and first.event_id.startswith("sha256:")
    assert first.event_id == second.event_id


@pytest.mark.parametrize("skew", [-299, 299])
def test_a_timestamp_within_five_minutes_is_accepted(provider: SendGridProvider, skew: int) -> None:
    fake = FakeSendGrid()
    headers, body = fake.signed(fake.events_for(sent("d1"), "delivered", STAMP), STAMP + skew)
    [event] = provider.verify_events(account(fake.public_key), request(headers, body))
    assert event.delivery_id == "d1"


def _refused(provider: SendGridProvider, public_key: str | None, req: SignedRequest) -> str:
    with pytest.raises(SignatureRefused) as refused:
        provider.verify_events(account(public_key), req)
    return str(refused.value)


def test_unsigned_wrongly_signed_tampered_and_stale_batches_are_refused(
    provider: SendGridProvider,
) -> None:
    fake, impostor = FakeSendGrid(), FakeSendGrid()
    events = fake.events_for(sent("d1"), "delivered", STAMP)
    headers, body = fake.signed(events, STAMP)
    key = fake.public_key

    assert "missing" in _refused(provider, key, request({}, body))
    assert "missing" in _refused(
        provider, key, request({TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]}, body)
    )
    # Signed by another key (what an attacker who knows the format can do).
    forged, _ = impostor.signed(events, STAMP)
    assert "does not verify" in _refused(provider, key, request(forged, body))
    # The right signature over another body, or another timestamp.
    tampered = body.replace(b"delivered", b"bounce")
    assert "does not verify" in _refused(provider, key, request(headers, tampered))
    moved = {**headers, TIMESTAMP_HEADER: str(STAMP + 1)}
    assert "does not verify" in _refused(provider, key, request(moved, body))
    garbage = {**headers, SIGNATURE_HEADER: "%%% not base64 %%%"}
    assert "does not verify" in _refused(provider, key, request(garbage, body))
    # Replayed later, or stamped ahead: more than five minutes either way.
    for skew in (301, -301):
        stale = request(headers, body, now=NOW + timedelta(seconds=skew))
        assert "stale" in _refused(provider, key, stale)
    not_a_time = {**headers, TIMESTAMP_HEADER: "yesterday"}
    assert "Unix time" in _refused(provider, key, request(not_a_time, body))
    # An account without a verification key accepts nothing.
    assert "webhook_public_key" in _refused(provider, None, request(headers, body))


def test_a_signed_body_that_is_not_an_array_of_events_is_refused(
    provider: SendGridProvider,
) -> None:
    fake = FakeSendGrid()
    body = b'{"event": "delivered"}'
    headers = {SIGNATURE_HEADER: fake.sign(body, str(STAMP)), TIMESTAMP_HEADER: str(STAMP)}
    assert "array" in _refused(provider, fake.public_key, request(headers, body))
    body = b"[not json"
    headers = {SIGNATURE_HEADER: fake.sign(body, str(STAMP)), TIMESTAMP_HEADER: str(STAMP)}
    assert "not JSON" in _refused(provider, fake.public_key, request(headers, body))
