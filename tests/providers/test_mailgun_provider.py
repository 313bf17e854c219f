"""The `mailgun` provider type against the fake Mailgun (tests/support/fake_mailgun.py):
batch calls with recipient variables, how answers map to outcomes, the credential check,
and the webhook signatures, with Mailgun's official SDK (`mailgun`) as the second opinion:
its client's request is read by the fake exactly like ours, and its verifier accepts what
the fake signs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from mailgun.client import Client
from mailgun.security import SecurityGuard

from app.channels.base import OutcomeKind
from app.providers.base import (
    ProviderAccount,
    ProviderCheckFailed,
    ProviderFactoryContext,
    ProviderMessage,
    SignatureRefused,
    SignedRequest,
)
from app.providers.builtin.mailgun import MailgunProvider, MailgunSettings, calls, create
from tests.support.fake_mailgun import FakeMailgun, running_mailgun, signature
from tests.support.processes import free_port

DOMAIN = "mg.shop.example"
SIGNING_KEY = "whkey-0123456789abcdef"
CONTENT = {"subject": "Order %recipient.delivery_id%", "text": "Hello", "html": "<p>Hello</p>"}
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMailgun]:
    async with running_mailgun() as f:
        yield f


@pytest.fixture
async def provider() -> AsyncIterator[MailgunProvider]:
    p = create(ProviderFactoryContext(allow_private_targets=True, http_timeout_seconds=2))
    yield p
    await p.aclose()


def account(base_url: str, api_key: str, **extra: Any) -> ProviderAccount:
    settings = MailgunSettings.model_validate(
        {
            "api_key": api_key,
            "domain": DOMAIN,
            "base_url": base_url,
            "webhook_signing_key": SIGNING_KEY,
            "from_email": "relay@shop.example",
            "from_name": "Shop",
            **extra,
        }
    )
    return ProviderAccount("p1", "c1", "mailgun", "mailgun", "email", settings)


def message(n: int, address: str | None = None, notification: str = "n1") -> ProviderMessage:
    return ProviderMessage(
        delivery_id=f"d{n}",
        notification_id=notification,
        client_id="c1",
        address=address or f"user{n}@example.com",
        content=CONTENT,
        created_at=NOW,
    )


async def test_one_call_per_batch_with_each_recipients_variables(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    outcomes = await provider.send(
        account(fake.base_url, fake.api_key), [message(n) for n in range(3)]
    )
    assert [o.outcome.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 3
    [call] = fake.calls
    assert call.first("from") == "Shop <relay@shop.example>"
    assert [v for k, v in call.fields if k == "to"] == [f"user{n}@example.com" for n in range(3)]
    assert call.first("v:delivery_id") == "%recipient.delivery_id%"
    # Each recipient's own message carries its delivery id (what events bring back).
    assert [(r.address, r.variables["delivery_id"], r.subject) for r in call.recipients] == [
        (f"user{n}@example.com", f"d{n}", f"Order d{n}") for n in range(3)
    ]
    assert {o.provider_message_id for o in outcomes} == {call.message_id}


async def test_the_same_address_twice_goes_in_two_calls(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    batch = [message(0, "ada@example.com"), message(1, "ADA@example.com"), message(2)]
    assert calls(batch) == [[0, 2], [1]]
    outcomes = await provider.send(account(fake.base_url, fake.api_key), batch)
    assert all(o.outcome.delivered for o in outcomes)
    assert sorted(len(c.recipients) for c in fake.calls) == [1, 2]
    assert fake.refused == []


async def test_two_notifications_in_one_batch_are_two_calls(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    batch = [message(0), message(1, notification="n2"), message(2)]
    assert calls(batch) == [[0, 2], [1]]


def test_a_thousand_recipients_per_call_at_most() -> None:
    batch = [message(n) for n in range(2500)]
    assert [len(c) for c in calls(batch)] == [1000, 1000, 500]


async def test_the_official_sdk_and_ours_send_the_same_form(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    ours = [message(0), message(1)]
    await provider.send(account(fake.base_url, fake.api_key), ours)
    variables = {m.address: {"delivery_id": m.delivery_id, "notification_id": "n1"} for m in ours}
    data = {
        "from": "Shop <relay@shop.example>",
        "to": [m.address for m in ours],
        "subject": CONTENT["subject"],
        "text": CONTENT["text"],
        "html": CONTENT["html"],
        "recipient-variables": orjson.dumps(variables).decode(),
        "v:delivery_id": "%recipient.delivery_id%",
        "v:notification_id": "%recipient.notification_id%",
        "o:tag": "chatapi",
    }

    def sdk_send() -> int:
        with Client(auth=("api", fake.api_key), api_url=fake.base_url) as client:
            return int(client.messages.create(data=data, domain=DOMAIN).status_code)

    assert await asyncio.to_thread(sdk_send) == 200
    mine, theirs = fake.calls
    assert sorted(mine.fields) == sorted(theirs.fields)
    assert mine.recipients == theirs.recipients


@pytest.mark.parametrize(
    ("status", "kind", "fail_over"),
    [
        (500, OutcomeKind.RETRY, True),
        (503, OutcomeKind.RETRY, True),
        (429, OutcomeKind.RETRY, True),
        (401, OutcomeKind.RETRY, True),
        (403, OutcomeKind.RETRY, True),
        (400, OutcomeKind.FAILED, False),
    ],
)
async def test_answers_map_to_outcomes(
    fake: FakeMailgun, provider: MailgunProvider, status: int, kind: OutcomeKind, fail_over: bool
) -> None:
    fake.answer(status)
    [outcome] = await provider.send(account(fake.base_url, fake.api_key), [message(0)])
    assert (outcome.outcome.kind, outcome.fail_over) == (kind, fail_over)
    assert outcome.outcome.response_code == status


async def test_a_wrong_key_and_an_unknown_domain_fail_over(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    [wrong] = await provider.send(account(fake.base_url, "key-wrong"), [message(0)])
    assert wrong.outcome.response_code == 401 and wrong.fail_over
    fake.domains.clear()
    [unknown] = await provider.send(account(fake.base_url, fake.api_key), [message(0)])
    assert unknown.outcome.response_code == 404 and unknown.fail_over


async def test_unreachable_mailgun_retries_and_fails_over(provider: MailgunProvider) -> None:
    [outcome] = await provider.send(
        account(f"http://127.0.0.1:{free_port()}", "key-x"), [message(0)]
    )
    assert outcome.outcome.kind is OutcomeKind.RETRY and outcome.fail_over


async def test_a_private_base_url_is_refused_by_the_address_policy(fake: FakeMailgun) -> None:
    strict = create(ProviderFactoryContext(allow_private_targets=False))
    try:
        [outcome] = await strict.send(account(fake.base_url, fake.api_key), [message(0)])
    finally:
        await strict.aclose()
    assert outcome.outcome.kind is OutcomeKind.FAILED and outcome.fail_over
    assert fake.calls == []


async def test_check_verifies_the_key_or_sends_a_test(
    fake: FakeMailgun, provider: MailgunProvider
) -> None:
    assert "accepted" in await provider.check(account(fake.base_url, fake.api_key), None)
    with pytest.raises(ProviderCheckFailed, match="401"):
        await provider.check(account(fake.base_url, "key-wrong"), None)
    said = await provider.check(account(fake.base_url, fake.api_key), "ops@shop.example")
    assert "ops@shop.example" in said
    assert fake.recipients()[-1].address == "ops@shop.example"


def test_settings_hold_the_secrets_and_default_to_the_us_api() -> None:
    settings = MailgunSettings.model_validate(
        {"api_key": "key-1", "domain": "MG.Shop.Example", "from_email": "a@shop.example"}
    )
    assert settings.base_url == "https://api.mailgun.net"
    assert settings.domain == "mg.shop.example"
    assert set(MailgunSettings.secret_field_names()) == {"api_key", "webhook_signing_key"}
    with pytest.raises(ValueError):
        MailgunSettings.model_validate(
            {"api_key": "k", "domain": "not a domain", "from_email": "a@shop.example"}
        )


# ---- events


def signed(
    data: dict[str, Any], *, key: str = SIGNING_KEY, at: datetime = NOW, **sig: str
) -> SignedRequest:
    body = {"signature": signature(key, str(int(at.timestamp())), **sig), "event-data": data}
    return SignedRequest("https://chat.example/x", {}, orjson.dumps(body), NOW)


def failed(severity: str = "permanent", reason: str = "bounce") -> dict[str, Any]:
    return {
        "event": "failed",
        "id": "ev-1",
        "timestamp": NOW.timestamp(),
        "severity": severity,
        "reason": reason,
        "recipient": "Ada@Example.com",
        "user-variables": {"delivery_id": "d1"},
        "delivery-status": {"code": 550, "description": "No such mailbox"},
    }


def test_the_fake_signs_as_the_official_sdk_verifies() -> None:
    sig = signature(SIGNING_KEY)
    assert SecurityGuard.verify_webhook(
        SIGNING_KEY, sig["token"], sig["timestamp"], sig["signature"]
    )
    expected = hmac.new(
        SIGNING_KEY.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256
    ).hexdigest()
    assert sig["signature"] == expected


def test_a_permanent_failure_is_a_hard_bounce(provider: MailgunProvider) -> None:
    [event] = provider.verify_events(account("https://api.mailgun.net", "k"), signed(failed()))
    assert (event.kind, event.permanent, event.delivery_id) == ("bounced", True, "d1")
    assert event.address == "ada@example.com" and event.event_id == "ev-1"
    assert event.detail == "550 No such mailbox" and event.nonce is not None
    assert event.occurred_at == NOW


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"event": "delivered"}, "delivered"),
        ({"event": "complained"}, "complained"),
        ({"event": "rejected"}, "failed"),
        ({"event": "failed", "severity": "permanent", "reason": "old"}, "failed"),
        ({"event": "failed", "severity": "temporary"}, None),
        ({"event": "opened"}, None),
    ],
)
def test_event_kinds(provider: MailgunProvider, data: dict[str, Any], kind: str | None) -> None:
    events = provider.verify_events(
        account("https://api.mailgun.net", "k"), signed({**data, "id": "e", "recipient": "a@b.c"})
    )
    assert [e.kind for e in events] == ([kind] if kind else [])


@pytest.mark.parametrize(
    "request_",
    [
        SignedRequest("u", {}, orjson.dumps({"event-data": failed()}), NOW),  # unsigned
        signed(failed(), key="another-key"),  # wrongly signed
        signed(failed(), at=NOW - timedelta(minutes=6)),  # stale
        signed(failed(), at=NOW + timedelta(minutes=6)),  # from the future
        SignedRequest("u", {}, b"timestamp=1&token=2&signature=3", NOW),  # not JSON
    ],
)
def test_refused_signatures(provider: MailgunProvider, request_: SignedRequest) -> None:
    with pytest.raises(SignatureRefused):
        provider.verify_events(account("https://api.mailgun.net", "k"), request_)


def test_no_signing_key_refuses_every_event(provider: MailgunProvider) -> None:
    no_key = account("https://api.mailgun.net", "k", webhook_signing_key=None)
    with pytest.raises(SignatureRefused, match="webhook_signing_key"):
        provider.verify_events(no_key, signed(failed()))
