"""The `twilio` provider type against the fake Twilio (tests/support/fake_twilio.py): what it
sends, how it reads each answer, its check, and its status-callback verification checked
against callbacks signed by Twilio's own `RequestValidator`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.channels.base import OutcomeKind
from app.core.errors import Unprocessable
from app.providers.base import (
    ProviderAccount,
    ProviderCheckFailed,
    ProviderFactoryContext,
    ProviderMessage,
    SignatureRefused,
    SignedRequest,
)
from app.providers.builtin import twilio
from app.providers.builtin.twilio import TwilioProvider, TwilioSettings
from app.providers.failover import send_through
from tests.conftest import make_settings
from tests.support.fake_twilio import FakeTwilio, SignedCallback, TwilioAccount, running_twilio
from tests.support.processes import free_port

PUBLIC = "https://chat.example.com"
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with running_twilio() as fake:
        yield fake


@pytest.fixture
async def provider(sqlite_url: str) -> AsyncIterator[TwilioProvider]:
    settings = make_settings(sqlite_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True, PUBLIC_BASE_URL=PUBLIC)
    made = twilio.create(ProviderFactoryContext.from_settings(settings))
    yield made
    await made.aclose()


def account_of(
    fake: FakeTwilio, who: TwilioAccount, name: str = "twilio-main", **overrides: Any
) -> ProviderAccount:
    settings = TwilioSettings.model_validate(
        {
            "account_sid": who.sid,
            "auth_token": who.auth_token,
            "from_number": "+15005550006",
            "base_url": fake.base_url,
            **overrides,
        }
    )
    return ProviderAccount(
        f"id-{name}", "client-1", name, "twilio", "sms", settings, client_slug="shop"
    )


def message(to: str = "+14155550100", text: str = "Your code is 123456") -> ProviderMessage:
    return ProviderMessage(
        delivery_id="01JDELIVERY0000000000000000",
        notification_id="01JNOTIFICATION000000000000",
        client_id="client-1",
        address=to,
        content={"text": text},
        created_at=NOW,
    )


def signed(callback: SignedCallback) -> SignedRequest:
    return SignedRequest(callback.url, callback.headers, callback.body, NOW)


async def test_a_message_is_posted_as_twilio_expects(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    account = account_of(fake, fake.account())
    [answer] = await provider.send(account, [message()])
    assert answer.outcome.kind is OutcomeKind.DELIVERED, answer
    [sent] = fake.messages
    assert answer.provider_message_id == sent.sid and sent.sid.startswith("SM")
    assert answer.outcome.response_code == 201
    assert sent.form == {
        "To": "+14155550100",
        "From": "+15005550006",
        "Body": "Your code is 123456",
        "StatusCallback": (
            f"{PUBLIC}/api/v1/provider-events/shop/twilio-main"
            "?delivery_id=01JDELIVERY0000000000000000"
        ),
    }


async def test_a_messaging_service_sends_instead_of_a_number(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    who = fake.account()
    [service] = who.services
    account = account_of(fake, who, from_number=None, messaging_service_sid=service)
    [answer] = await provider.send(account, [message()])
    assert answer.outcome.delivered, answer
    assert fake.messages[0].form["MessagingServiceSid"] == service
    assert "From" not in fake.messages[0].form


async def test_without_a_public_base_url_no_callback_is_asked(
    fake: FakeTwilio, sqlite_url: str
) -> None:
    settings = make_settings(sqlite_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)
    provider = twilio.create(ProviderFactoryContext.from_settings(settings))
    try:
        [answer] = await provider.send(account_of(fake, fake.account()), [message()])
    finally:
        await provider.aclose()
    assert answer.outcome.delivered
    assert "StatusCallback" not in fake.messages[0].form


async def test_answers_about_the_number_fail_without_failing_over(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.invalid_numbers.add("+14155550199")
    fake.landlines.add("+14155550123")
    account = account_of(fake, fake.account())
    invalid, landline, too_long = await provider.send(
        account,
        [message("+14155550199"), message("+14155550123"), message(text="x" * 1601)],
    )
    for answer, code in ((invalid, 21211), (landline, 21614), (too_long, 21617)):
        assert answer.outcome.kind is OutcomeKind.FAILED, answer
        assert not answer.fail_over, answer
        assert answer.outcome.response_code == 400
        assert f"Twilio error {code}" in str(answer.outcome.error)


async def test_an_account_problem_fails_over(fake: FakeTwilio, provider: TwilioProvider) -> None:
    who = fake.account()
    # A sender the account does not own: this account's configuration, not the message's.
    [wrong_sender] = await provider.send(
        account_of(fake, who, from_number="+14155550111"), [message()]
    )
    assert wrong_sender.outcome.kind is OutcomeKind.FAILED and wrong_sender.fail_over
    # Wrong credentials, throttling, Twilio's own trouble: retried, and failed over.
    [bad_token] = await provider.send(account_of(fake, who, auth_token="nope"), [message()])
    assert (bad_token.outcome.kind, bad_token.fail_over) == (OutcomeKind.RETRY, True)
    assert bad_token.outcome.response_code == 401
    for status, code in ((429, 20429), (500, None), (503, None)):
        fake.fail(who.sid, status, code)
        [answer] = await provider.send(account_of(fake, who), [message()])
        assert (answer.outcome.kind, answer.fail_over) == (OutcomeKind.RETRY, True), status
        assert answer.outcome.response_code == status
    fake.recover(who.sid)


async def test_an_unreachable_host_fails_over(provider: TwilioProvider) -> None:
    settings = TwilioSettings.model_validate(
        {
            "account_sid": "AC" + "0" * 32,
            "auth_token": "token",
            "from_number": "+15005550006",
            "base_url": f"http://127.0.0.1:{free_port()}",  # nothing listens
        }
    )
    account = ProviderAccount("id", "client-1", "down", "twilio", "sms", settings)
    [answer] = await provider.send(account, [message()])
    assert (answer.outcome.kind, answer.fail_over) == (OutcomeKind.RETRY, True)


async def test_the_chain_moves_on_from_a_failing_account(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    first, second = fake.account(), fake.account()
    fake.fail(first.sid, 500)
    chain = [account_of(fake, first, "primary"), account_of(fake, second, "backup")]
    [answer] = await send_through(chain, {"twilio": provider}, [message()])
    assert answer.outcome.delivered and answer.outcome.served_by == "backup"
    assert str(answer.outcome.error).startswith("primary: HTTP 500")
    assert [m.account_sid for m in fake.messages] == [second.sid]
    # An invalid number stops at the first account: the second would refuse it too.
    fake.recover(first.sid)
    fake.invalid_numbers.add("+14155550199")
    [refused] = await send_through(chain, {"twilio": provider}, [message("+14155550199")])
    assert refused.outcome.kind is OutcomeKind.FAILED and refused.outcome.served_by == "primary"
    assert [sid for sid, _ in fake.requests][-1] == first.sid


async def test_check_reads_the_account_or_sends_a_test_sms(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    who = fake.account()
    detail = await provider.check(account_of(fake, who), None)
    assert who.sid in detail and "active" in detail
    assert fake.messages == []
    detail = await provider.check(account_of(fake, who), "+14155550100")
    [sent] = fake.messages
    assert sent.sid in detail and sent.to == "+14155550100"
    assert "StatusCallback" in sent.form  # the account named its slug; a test has no delivery
    with pytest.raises(ProviderCheckFailed, match="20003"):
        await provider.check(account_of(fake, who, auth_token="wrong"), None)
    with pytest.raises(Unprocessable):
        await provider.check(account_of(fake, who), "0415 555 0100")


async def test_status_callbacks_signed_by_twilios_validator_are_accepted(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    who = fake.account()
    account = account_of(fake, who)
    await provider.send(account, [message()])
    [sent] = fake.messages

    [delivered] = provider.verify_events(account, signed(fake.callback(sent, "delivered")))
    assert delivered.kind == "delivered" and not delivered.permanent
    assert delivered.delivery_id == "01JDELIVERY0000000000000000"
    assert delivered.event_id == f"{sent.sid}:delivered"
    assert delivered.address == "+14155550100"

    [landline] = provider.verify_events(account, signed(fake.callback(sent, "undelivered", 30006)))
    assert landline.kind == "failed" and landline.permanent
    assert landline.event_id == f"{sent.sid}:undelivered"
    [stop] = provider.verify_events(account, signed(fake.callback(sent, "failed", 21610)))
    assert stop.kind == "failed" and stop.permanent
    [busy] = provider.verify_events(account, signed(fake.callback(sent, "undelivered", 30003)))
    assert busy.kind == "failed" and not busy.permanent
    # Statuses before the handset's answer report nothing new.
    assert provider.verify_events(account, signed(fake.callback(sent, "sent"))) == []


async def test_callbacks_not_signed_by_the_account_are_refused(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    who, other = fake.account(), fake.account()
    account = account_of(fake, who)
    await provider.send(account, [message()])
    [sent] = fake.messages
    good = fake.callback(sent, "delivered")

    unsigned = {k: v for k, v in good.headers.items() if k != "x-twilio-signature"}
    with pytest.raises(SignatureRefused, match="missing"):
        provider.verify_events(account, SignedRequest(good.url, unsigned, good.body, NOW))
    # Signed with another account's token.
    with pytest.raises(SignatureRefused):
        provider.verify_events(account_of(fake, other), signed(good))
    # A parameter changed after signing; the URL (its delivery_id) changed.
    tampered = {**good.form, "MessageStatus": "failed"}
    forged = SignedCallback(good.url, tampered, good.headers)
    with pytest.raises(SignatureRefused):
        provider.verify_events(account, signed(forged))
    moved = SignedCallback(good.url.replace("01JDELIVERY", "01JOTHERONE"), good.form, good.headers)
    with pytest.raises(SignatureRefused):
        provider.verify_events(account, signed(moved))


async def test_the_url_is_checked_with_and_without_its_default_port(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    account = account_of(fake, fake.account())
    await provider.send(account, [message()])
    callback = fake.callback(fake.messages[0], "delivered")
    # A proxy in front of us may add :443 to the URL we see (Twilio signed it without).
    with_port = callback.url.replace("chat.example.com/", "chat.example.com:443/")
    request = SignedRequest(with_port, callback.headers, callback.body, NOW)
    assert [e.kind for e in provider.verify_events(account, request)] == ["delivered"]


def test_settings_are_checked() -> None:
    base = {"account_sid": "AC" + "a" * 32, "auth_token": "t0ken", "from_number": "+15005550006"}
    settings = TwilioSettings.model_validate(base)
    assert settings.base_url == "https://api.twilio.com"
    assert TwilioSettings.secret_field_names() == ("auth_token",)
    assert isinstance(settings.auth_token, SecretStr)
    for bad in (
        {**base, "account_sid": "AC123"},
        {**base, "from_number": "415-555-0100"},
        {**base, "messaging_service_sid": "MG" + "b" * 32},  # both senders
        {k: v for k, v in base.items() if k != "from_number"},  # no sender
        {**base, "messaging_service_sid": "XX", "from_number": None},
        {**base, "base_url": "ftp://api.twilio.com"},
        {**base, "auth_token": ""},
    ):
        with pytest.raises(ValidationError):
            TwilioSettings.model_validate(bad)
