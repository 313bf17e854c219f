"""The `sendgrid` provider type against a fake SendGrid on 127.0.0.1: the Mail Send request
(checked against SendGrid's own `sendgrid.helpers.mail` builder), how each answer maps to an
outcome, the address policy, `check`, and the settings' validation."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from sendgrid.helpers.mail import CustomArg, From, Mail, Personalization, To

from app.channels.base import OutcomeKind
from app.core.clock import ManualClock, using_clock
from app.providers.base import ProviderAccount, ProviderCheckFailed, ProviderMessage
from app.providers.builtin.push_http import GuardedHttp
from app.providers.builtin.sendgrid import SendGridProvider, SendGridSettings
from app.providers.builtin.sendgrid_mail import network_outcome
from tests.support.fake_sendgrid import UNAUTHORIZED, FakeSendGrid, running_sendgrid
from tests.support.processes import free_port

CONTENT = {"subject": "Your order shipped", "text": "Plain body", "html": "<p>Html body</p>"}
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSendGrid]:
    async with running_sendgrid() as f:
        yield f


@pytest.fixture
async def provider() -> AsyncIterator[SendGridProvider]:
    p = SendGridProvider(GuardedHttp(allow_private=True, timeout=5, ca_file=None))
    yield p
    await p.aclose()


def account(fake: FakeSendGrid, **settings: Any) -> ProviderAccount:
    values = {
        "api_key": fake.api_key,
        "from_email": "relay@shop.example",
        "from_name": "Shop",
        "base_url": fake.base_url,
        **settings,
    }
    return ProviderAccount(
        "p1", "c1", "sg", "sendgrid", "email", SendGridSettings.model_validate(values)
    )


def message(
    n: int, address: str | None = None, content: dict[str, Any] | None = None
) -> ProviderMessage:
    return ProviderMessage(
        delivery_id=f"d{n}",
        notification_id="n1",
        client_id="c1",
        address=address or f"user{n}@example.com",
        content=content or CONTENT,
        created_at=NOW,
    )


def official(messages: list[ProviderMessage]) -> dict[str, Any]:
    """The same request as SendGrid's own Python library builds it."""
    mail = Mail(
        from_email=From("relay@shop.example", "Shop"),
        subject=CONTENT["subject"],
        plain_text_content=CONTENT["text"],
        html_content=CONTENT["html"],
    )
    for i, m in enumerate(messages):
        p = Personalization()
        p.add_to(To(m.address))
        p.add_custom_arg(CustomArg("delivery_id", m.delivery_id))
        mail.add_personalization(p, index=i)
    return dict(mail.get())


async def test_one_request_carries_every_message_as_a_personalization(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    messages = [message(n) for n in range(3)]
    outcomes = await provider.send(account(fake), messages)

    [call] = fake.calls
    assert call.status == 202, fake.refused
    assert call.body == official(messages)
    assert call.headers["authorization"] == f"Bearer {fake.api_key}"
    assert call.headers["content-type"] == "application/json"
    for outcome in outcomes:
        assert outcome.outcome.kind is OutcomeKind.DELIVERED
        assert outcome.outcome.response_code == 202
        assert outcome.provider_message_id == call.message_id
        assert not outcome.fail_over


async def test_different_contents_go_in_separate_requests_and_from_is_parsed(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    other = {**CONTENT, "subject": "Other", "from": "Support <help@shop.example>"}
    outcomes = await provider.send(
        account(fake), [message(1), message(2, content=other), message(3)]
    )
    assert [o.outcome.kind for o in outcomes] == [OutcomeKind.DELIVERED] * 3
    by_subject = {c.body["subject"]: c for c in fake.calls}
    assert by_subject["Your order shipped"].recipients == ["user1@example.com", "user3@example.com"]
    assert by_subject["Other"].body["from"] == {"email": "help@shop.example", "name": "Support"}
    assert outcomes[1].provider_message_id == by_subject["Other"].message_id


async def test_a_bad_request_fails_without_failing_over_with_sendgrids_reason(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    [outcome] = await provider.send(account(fake), [message(1, address="not-an-address")])
    assert outcome.outcome.kind is OutcomeKind.FAILED and not outcome.fail_over
    assert outcome.outcome.response_code == 400
    assert outcome.outcome.error == (
        "HTTP 400: personalizations.0.to.0.email: Does not contain a valid address."
    )
    fake.fail(413, message="The JSON payload you have included in your request is too large.")
    [outcome] = await provider.send(account(fake), [message(2)])
    assert outcome.outcome.kind is OutcomeKind.FAILED and not outcome.fail_over
    assert outcome.outcome.error == (
        "HTTP 413: The JSON payload you have included in your request is too large."
    )


async def test_content_no_provider_could_send_fails_before_any_request(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    bad_from = {**CONTENT, "from": "nobody"}
    empty = {"subject": "Empty", "text": ""}
    outcomes = await provider.send(
        account(fake), [message(1, content=bad_from), message(2, content=empty)]
    )
    assert [o.outcome.kind for o in outcomes] == [OutcomeKind.FAILED] * 2
    assert not any(o.fail_over for o in outcomes)
    assert fake.calls == []


@pytest.mark.parametrize("status", [401, 403, 500, 503])
async def test_the_accounts_or_services_failures_retry_and_fail_over(
    fake: FakeSendGrid, provider: SendGridProvider, status: int
) -> None:
    fake.fail(status)
    outcomes = await provider.send(account(fake), [message(1), message(2)])
    for outcome in outcomes:
        assert outcome.outcome.kind is OutcomeKind.RETRY and outcome.fail_over
        assert outcome.outcome.error == f"HTTP {status}: simulated failure"


async def test_a_refused_key_retries_fails_over_and_the_key_is_never_in_the_error(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    wrong = "SG.wrong-key.for-this-test"
    [outcome] = await provider.send(account(fake, api_key=wrong), [message(1)])
    assert outcome.outcome.kind is OutcomeKind.RETRY and outcome.fail_over
    assert outcome.outcome.error == f"HTTP 401: {UNAUTHORIZED}"
    assert wrong not in repr(outcome) and fake.api_key not in repr(outcome)


async def test_rate_limited_retries_when_the_limit_resets(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    with using_clock(ManualClock(NOW)):
        reset = int(NOW.timestamp()) + 42
        fake.fail(429, headers={"x-ratelimit-reset": str(reset)})
        [outcome] = await provider.send(account(fake), [message(1)])
        fake.fail(429, headers={"retry-after": "7"})
        [again] = await provider.send(account(fake), [message(1)])
    assert outcome.outcome.kind is OutcomeKind.RETRY and outcome.fail_over
    assert outcome.outcome.retry_after == 42
    assert again.outcome.retry_after == 7


async def test_a_base_url_that_is_not_sendgrids_fails_over(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    [outcome] = await provider.send(
        account(fake, base_url=f"{fake.base_url}/nothing"), [message(1)]
    )
    assert outcome.outcome.kind is OutcomeKind.FAILED and outcome.fail_over
    assert outcome.outcome.response_code == 404


async def test_unreachable_and_timed_out_retry_and_fail_over(provider: SendGridProvider) -> None:
    closed = FakeSendGrid(port=free_port())  # nothing listens there
    [outcome] = await provider.send(account(closed), [message(1)])
    assert outcome.outcome.kind is OutcomeKind.RETRY and outcome.fail_over
    assert "ClientConnectorError" in (outcome.outcome.error or "")
    timed_out = network_outcome(asyncio.TimeoutError(), 5.0)
    assert timed_out.outcome.kind is OutcomeKind.RETRY and timed_out.fail_over
    assert timed_out.outcome.error == "timeout: no answer within 5.0s"


async def test_the_address_policy_holds_base_url_at_send_time(fake: FakeSendGrid) -> None:
    strict = SendGridProvider(GuardedHttp(allow_private=False, timeout=5, ca_file=None))
    try:
        [outcome] = await strict.send(account(fake), [message(1)])
    finally:
        await strict.aclose()
    assert outcome.outcome.kind is OutcomeKind.FAILED and outcome.fail_over
    assert fake.calls == []


async def test_check_reads_the_scopes_or_sends_a_test_message(
    fake: FakeSendGrid, provider: SendGridProvider
) -> None:
    said = await provider.check(account(fake), None)
    assert "mail.send" in said and fake.calls == []
    said = await provider.check(account(fake), "ops@example.com")
    [call] = fake.calls
    assert call.recipients == ["ops@example.com"] and str(call.message_id) in said
    with pytest.raises(ProviderCheckFailed, match="HTTP 401"):
        await provider.check(account(fake, api_key="SG.revoked"), None)
    fake.scopes = ["user.profile.read"]
    with pytest.raises(ProviderCheckFailed, match=r"lacks the mail\.send scope"):
        await provider.check(account(fake), None)
    fake.fail(500)
    with pytest.raises(ProviderCheckFailed, match="HTTP 500"):
        await provider.check(account(fake), "ops@example.com")


def _b64_der(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_settings_hold_the_key_secret_and_check_the_verification_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    base = {"api_key": "SG.k.s", "from_email": "relay@shop.example"}
    settings = SendGridSettings.model_validate({**base, "webhook_public_key": pem})
    assert settings.webhook_public_key == _b64_der(key)  # as SendGrid's console shows it
    assert settings.base_url == "https://api.sendgrid.com"
    assert SendGridSettings.secret_field_names() == ("api_key",)
    assert "SG.k.s" not in repr(settings)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    for bad in (
        {**base, "webhook_public_key": "not a key"},
        {**base, "webhook_public_key": _b64_der(rsa_key)},
        {**base, "webhook_public_key": _b64_der(p384)},
        {**base, "base_url": "ftp://api.sendgrid.com"},
        {**base, "api_key": "SG.k s"},
        {**base, "from_email": "nobody"},
        {**base, "from_name": "Shop\r\nBcc: x@example.com"},
        {"from_email": "relay@shop.example"},
    ):
        with pytest.raises(ValidationError):
            SendGridSettings.model_validate(bad)
