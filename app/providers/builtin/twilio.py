"""Provider type `twilio`: SMS through Twilio's Programmable Messaging REST API.

Each message is one `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`
(HTTP basic auth `account_sid:auth_token`, a form with `To`, `From` or
`MessagingServiceSid`, `Body` and, when PUBLIC_BASE_URL is set, `StatusCallback`: our
`/api/v1/provider-events/{client_slug}/{name}?delivery_id=…`, where Twilio reports the
handset's answer, signed with `X-Twilio-Signature` — app/providers/builtin/twilio_events.py).

Answers: 201 delivers (accepted by Twilio; `provider_message_id` is the message's `sid`); a
400 about the number or the message (21211 invalid number, 21614 not a mobile, 21610
unsubscribed, 21617 too long, …) fails without failing over — another account would refuse
it too; another 400 is about this account's configuration (the sender, a region not
enabled) and fails over; 401/403/404, 429, 5xx, a timeout or a refused connection retry and
fail over.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from app.channels.base import Outcome, OutcomeKind
from app.channels.webhook import parse_retry_after
from app.core.clock import utcnow
from app.core.errors import Unprocessable
from app.core.ids import new_id
from app.core.phone import E164, e164
from app.providers.base import (
    BaseProviderType,
    HttpProviderSettings,
    ProviderAccount,
    ProviderCheckFailed,
    ProviderEvent,
    ProviderFactoryContext,
    ProviderMessage,
    ProviderOutcome,
    SignedRequest,
)
from app.providers.builtin import twilio_events
from app.providers.builtin.push_http import GuardedHttp, network_outcome, reply_of

API_VERSION = "2010-04-01"
# Where delivery events come back (the API's prefix + the provider-events route).
EVENTS_PATH = "/api/v1/provider-events"
TEST_BODY = "ChatAPI test message: your Twilio provider works."
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

# 400s about the recipient or the message: another account would refuse them too.
# 21211 invalid To, 21214 To cannot be reached, 21217 To not a valid number, 21401 invalid
# number, 21407 not a supported destination, 21421 invalid PhoneNumber, 21604 To required,
# 21610 the number replied STOP, 21612 To unreachable from this sender, 21614 not a mobile
# number, 21602/21619 a body is required, 21617 the body exceeds 1,600 characters.
MESSAGE_CODES = frozenset(
    {21211, 21214, 21217, 21401, 21407, 21421, 21602, 21604, 21610, 21612, 21614, 21617, 21619}
)


class TwilioSettings(HttpProviderSettings):
    """`{"account_sid", "auth_token", "from_number" | "messaging_service_sid", "base_url"}`:
    the account, its auth token (secret: it also signs the status callbacks), the sender —
    a number of the account in E.164 or a Messaging Service — and the API host (Twilio's
    by default; held to the webhook address policy)."""

    account_sid: str
    auth_token: SecretStr
    from_number: E164 | None = None
    messaging_service_sid: str | None = None
    base_url: str = Field(default="https://api.twilio.com", max_length=2000)

    @field_validator("account_sid")
    @classmethod
    def _account(cls, value: str) -> str:
        if not _ACCOUNT_SID.match(value):
            raise ValueError("account_sid must be 'AC' followed by 32 hexadecimal digits")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not _SERVICE_SID.match(value):
            raise ValueError("messaging_service_sid must be 'MG' followed by 32 hexadecimal digits")
        return value

    @field_validator("auth_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if not 1 <= len(token) <= 256 or any(ord(c) <= 0x20 for c in token):
            raise ValueError("auth_token must be 1 to 256 characters, no spaces")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or any(ord(c) <= 0x20 for c in value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioSettings:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")
        return self


class TwilioProvider(BaseProviderType):
    """Sends through Twilio's Messages API on the guarded aiohttp session."""

    type = "twilio"
    channel = "sms"
    settings_model = TwilioSettings
    # Twilio has no batch send: one request per message, a batch sent concurrently.
    max_batch = 50
    # Routing fills in the tenant's slug: it is part of the StatusCallback URL.
    needs_client_slug = True

    def __init__(self, http: GuardedHttp, public_base_url: str | None) -> None:
        self._http = http
        self._public_base_url = public_base_url.rstrip("/") if public_base_url else None

    def status_callback(self, account: ProviderAccount, delivery_id: str) -> str | None:
        """Where Twilio reports this message's status, or None without PUBLIC_BASE_URL (or
        without the tenant's slug: a test message)."""
        if self._public_base_url is None or account.client_slug is None:
            return None
        path = f"{EVENTS_PATH}/{quote(account.client_slug, safe='')}/{quote(account.name, safe='')}"
        return f"{self._public_base_url}{path}?{urlencode({'delivery_id': delivery_id})}"

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """One Messages.json POST per message, concurrently."""
        settings = account.settings
        assert isinstance(settings, TwilioSettings)
        return list(await asyncio.gather(*(self._one(account, settings, m) for m in messages)))

    async def _one(
        self, account: ProviderAccount, settings: TwilioSettings, message: ProviderMessage
    ) -> ProviderOutcome:
        form = {"To": message.address, "Body": str(message.content.get("text") or "")}
        if settings.messaging_service_sid is not None:
            form["MessagingServiceSid"] = settings.messaging_service_sid
        else:
            form["From"] = str(settings.from_number)
        callback = self.status_callback(account, message.delivery_id)
        if callback is not None:
            form["StatusCallback"] = callback
        url = f"{settings.base_url}/{API_VERSION}/Accounts/{settings.account_sid}/Messages.json"
        try:
            status, retry_after, text = await self._request("POST", url, settings, form)
        except Exception as exc:
            return network_outcome(exc, self._http.timeout)
        return classify(status, retry_after, text)

    async def _request(
        self, method: str, url: str, settings: TwilioSettings, form: dict[str, str] | None
    ) -> tuple[int, str | None, str]:
        async with (
            self._http.slots,
            self._http.session().request(
                method,
                url,
                data=form,
                headers={"authorization": _basic_auth(settings)},
                allow_redirects=False,
            ) as response,
        ):
            text = await response.text(errors="replace")
            return response.status, response.headers.get("retry-after"), text

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """With `to`: a test SMS to it; without: read the account resource (the
        credentials work)."""
        settings = account.settings
        assert isinstance(settings, TwilioSettings)
        if to is not None:
            try:
                e164(to)
            except ValueError as exc:
                raise Unprocessable(f"to {exc}", loc=("body", "to")) from None
            message = ProviderMessage(
                delivery_id=f"test-{new_id()}",
                notification_id="test",
                client_id=account.client_id,
                address=to,
                content={"text": TEST_BODY},
                created_at=utcnow(),
            )
            answer = await self._one(account, settings, message)
            if not answer.outcome.delivered:
                raise ProviderCheckFailed(answer.outcome.error or "Twilio did not accept it")
            return f"test SMS to {to} accepted by Twilio: {answer.provider_message_id}"
        url = f"{settings.base_url}/{API_VERSION}/Accounts/{settings.account_sid}.json"
        try:
            status, _, text = await self._request("GET", url, settings, None)
        except Exception as exc:
            failed = network_outcome(exc, self._http.timeout).outcome
            raise ProviderCheckFailed(str(failed.error)) from None
        body = _json(text)
        if status != 200:
            raise ProviderCheckFailed(_error_text(status, body))
        return (
            f"account {settings.account_sid} accepted the credentials "
            f"(status: {body.get('status', 'unknown')})"
        )

    def verify_events(
        self, account: ProviderAccount, request: SignedRequest
    ) -> list[ProviderEvent]:
        """A status callback signed with this account's auth token (SignatureRefused
        otherwise): `delivered`, or `failed` for undelivered/failed."""
        settings = account.settings
        assert isinstance(settings, TwilioSettings)
        token = settings.auth_token.get_secret_value()
        params = twilio_events.verified_params(token, request)
        return twilio_events.events(settings.account_sid, request, params)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()


def classify(status: int, retry_after: str | None, text: str | None) -> ProviderOutcome:
    """Twilio's answer to a Messages.json POST as an outcome."""
    body = _json(text)
    reply = reply_of(text)
    if status in (200, 201):
        sid = body.get("sid") if isinstance(body.get("sid"), str) else None
        return ProviderOutcome(
            Outcome(OutcomeKind.DELIVERED, response_code=status, reply=sid or reply),
            provider_message_id=sid,
        )
    error = _error_text(status, body)
    if status == 429 or status >= 500 or status in (401, 403, 404):
        # Throttled, Twilio's own trouble, or this account's credentials: another account
        # of the route may send it now; the last one's answer is retried.
        return ProviderOutcome(
            Outcome(
                OutcomeKind.RETRY,
                retry_after=parse_retry_after(retry_after, utcnow()),
                response_code=status,
                reply=reply,
                error=error,
            ),
            fail_over=True,
        )
    code = body.get("code")
    about_message = status == 400 and code in MESSAGE_CODES
    return ProviderOutcome(
        Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error),
        # Any other refusal is about this account (its sender, a region it has not enabled).
        fail_over=not about_message,
    )


def _basic_auth(settings: TwilioSettings) -> str:
    # RFC 7617 (aiohttp's BasicAuth helper is deprecated, its replacement only in 3.13+).
    pair = f"{settings.account_sid}:{settings.auth_token.get_secret_value()}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _json(text: str | None) -> dict[str, Any]:
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(status: int, body: dict[str, Any]) -> str:
    code, message = body.get("code"), body.get("message")
    text = f"HTTP {status}"
    if code is not None:
        text += f" Twilio error {code}"
    if isinstance(message, str) and message:
        text += f": {message[:300]}"
    return text


def create(ctx: ProviderFactoryContext) -> TwilioProvider:
    """Entry point `twilio`."""
    public = ctx.settings.PUBLIC_BASE_URL if ctx.settings is not None else None
    return TwilioProvider(GuardedHttp.from_context(ctx), public)
