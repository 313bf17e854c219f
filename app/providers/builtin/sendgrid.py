"""Provider type `sendgrid`: e-mail through SendGrid's v3 Mail Send API.

A `send` of up to 1,000 messages is one `POST {base_url}/v3/mail/send` (per distinct
content: a notification's deliveries share theirs), `Authorization: Bearer {api_key}`, each
delivery a personalization carrying its `delivery_id` as a custom argument so that the
Event Webhook's events find it (app/providers/builtin/sendgrid_mail.py builds the request
and reads the answer). The account's Event Webhook requests are verified with its
`webhook_public_key` (app/providers/builtin/sendgrid_events.py).

Every connection goes through the webhook address policy's guarded connector (`base_url`
is the tenant's to set), on the aiohttp client the push types use.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import EmailStr, Field, SecretStr, field_validator

from app.channels.base import Outcome, OutcomeKind
from app.core.clock import utcnow
from app.core.ids import new_id
from app.providers.base import (
    BaseProviderType,
    HttpProviderSettings,
    ProviderAccount,
    ProviderCheckFailed,
    ProviderEvent,
    ProviderFactoryContext,
    ProviderMessage,
    ProviderOutcome,
    ProviderSettings,
    SignedRequest,
)
from app.providers.builtin import sendgrid_events
from app.providers.builtin.push_http import GuardedHttp
from app.providers.builtin.sendgrid_mail import (
    MAX_PERSONALIZATIONS,
    classify,
    error_messages,
    group_key,
    mail_body,
    network_outcome,
)

DEFAULT_BASE_URL = "https://api.sendgrid.com"
USER_AGENT = "ChatAPI-SendGrid/1.0"
TEST_SUBJECT = "ChatAPI test e-mail"
TEST_TEXT = (
    "This message was sent to check the SendGrid provider's configuration.\n"
    "If you can read it, e-mail notifications can be delivered.\n"
)


class SendGridSettings(HttpProviderSettings):
    """`{"api_key", "from_email", "from_name", "base_url", "webhook_public_key"}`: the API key
    (secret; it needs the `mail.send` scope), the sender (a verified sender or domain of the
    account), the API host and the Event Webhook's verification key."""

    api_key: SecretStr = Field(min_length=1, max_length=512)
    from_email: EmailStr
    from_name: str | None = Field(default=None, max_length=200)
    base_url: str = DEFAULT_BASE_URL
    webhook_public_key: str | None = Field(default=None, max_length=sendgrid_events.MAX_KEY_CHARS)

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        # It goes into a header: a space or a line break could only be a paste mistake.
        if any(ord(c) <= 0x20 or c == "\x7f" for c in value.get_secret_value()):
            raise ValueError("api_key must not contain spaces or control characters")
        return value

    @field_validator("from_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise ValueError("from_name must not contain line breaks or control characters")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or any(ord(c) <= 0x20 for c in value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("webhook_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        return None if value is None else sendgrid_events.normalize_public_key(value)


class SendGridProvider(BaseProviderType):
    """Sends through SendGrid's Mail Send API on the guarded aiohttp session."""

    type = "sendgrid"
    channel = "email"
    # Annotated as the protocol's (its attributes are invariant): a ProviderType, not only a
    # BaseProviderType.
    settings_model: builtins.type[ProviderSettings] = SendGridSettings
    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, http: GuardedHttp) -> None:
        self._http = http

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """One Mail Send request per distinct content among `messages` (one, for a
        notification's deliveries), concurrently."""
        settings = account.settings
        assert isinstance(settings, SendGridSettings)
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, message in enumerate(messages):
            groups[group_key(message.content)].append(i)
        indexes = list(groups.values())
        answers = await asyncio.gather(
            *(self._request(settings, [messages[i] for i in group]) for group in indexes)
        )
        outcomes: list[ProviderOutcome | None] = [None] * len(messages)
        for group, answer in zip(indexes, answers, strict=True):
            for i in group:
                outcomes[i] = answer
        return [o for o in outcomes if o is not None]

    async def _request(
        self, settings: SendGridSettings, messages: Sequence[ProviderMessage]
    ) -> ProviderOutcome:
        try:
            body = orjson.dumps(mail_body(settings, messages))
        except ValueError as exc:
            # The content can never be sent (a bad `from`, no body), by any provider.
            return ProviderOutcome(
                Outcome(OutcomeKind.FAILED, error=f"invalid e-mail content: {exc}")
            )
        try:
            async with (
                self._http.slots,
                self._http.session().post(
                    f"{settings.base_url}/v3/mail/send",
                    data=body,
                    headers=self._headers(settings, {"content-type": "application/json"}),
                    allow_redirects=False,
                ) as response,
            ):
                text = await response.text(errors="replace")
                status, headers = (
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                )
        except Exception as exc:
            return network_outcome(exc, self._http.timeout)
        return classify(status, headers, text, utcnow())

    def _headers(self, settings: SendGridSettings, extra: dict[str, str]) -> dict[str, str]:
        return {
            "authorization": f"Bearer {settings.api_key.get_secret_value()}",
            "user-agent": USER_AGENT,
            **extra,
        }

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """With `to`, send it a test message; without, read the key's scopes (`GET
        /v3/scopes`) and require `mail.send`."""
        settings = account.settings
        assert isinstance(settings, SendGridSettings)
        if to is not None:
            return await self._test_message(account, settings, to)
        try:
            async with self._http.session().get(
                f"{settings.base_url}/v3/scopes",
                headers=self._headers(settings, {"accept": "application/json"}),
                allow_redirects=False,
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except Exception as exc:
            raise ProviderCheckFailed(
                network_outcome(exc, self._http.timeout).outcome.error or "no answer"
            ) from None
        if status != 200:
            said = error_messages(text)
            raise ProviderCheckFailed(f"HTTP {status}" + (f": {said}" if said else ""))
        try:
            scopes = orjson.loads(text).get("scopes")
        except (orjson.JSONDecodeError, AttributeError):
            scopes = None
        if not isinstance(scopes, list):
            raise ProviderCheckFailed(f"{settings.base_url}/v3/scopes did not answer scopes")
        if "mail.send" not in scopes:
            raise ProviderCheckFailed("the API key lacks the mail.send scope")
        return f"the API key is valid at {settings.base_url} and has the mail.send scope"

    async def _test_message(
        self, account: ProviderAccount, settings: SendGridSettings, to: str
    ) -> str:
        message = ProviderMessage(
            delivery_id=f"test-{new_id()}",
            notification_id="test",
            client_id=account.client_id,
            address=to,
            content={"subject": TEST_SUBJECT, "text": TEST_TEXT},
            created_at=utcnow(),
        )
        answer = await self._request(settings, [message])
        outcome = answer.outcome
        if not outcome.delivered:
            raise ProviderCheckFailed(outcome.error or outcome.kind.value)
        return f"sent a test message to {to}: HTTP {outcome.response_code}, X-Message-Id {outcome.reply}"

    def verify_events(
        self, account: ProviderAccount, request: SignedRequest
    ) -> list[ProviderEvent]:
        """The events of a signed Event Webhook request (sendgrid_events.verify_events)."""
        settings = account.settings
        assert isinstance(settings, SendGridSettings)
        return sendgrid_events.verify_events(settings.webhook_public_key, request)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()


def create(ctx: ProviderFactoryContext) -> SendGridProvider:
    """Entry point `sendgrid`."""
    return SendGridProvider(GuardedHttp.from_context(ctx))
