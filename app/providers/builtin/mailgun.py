"""Provider type `mailgun`: e-mail through Mailgun's Messages API, in batches.

One `POST {base_url}/v3/{domain}/messages` carries up to 1,000 recipients of one message
(Mailgun's batch sending): repeated `to` fields and `recipient-variables`, a JSON object
keyed by address, so each recipient gets a message of their own whose custom variable
`v:delivery_id=%recipient.delivery_id%` comes back in the delivery events
(app/providers/builtin/mailgun_events.py). Because the variables are keyed by address, two
deliveries to one address never share a call.

Answers: 200 delivers every recipient of the call (`id` is the provider message id); 400 is
about the request (fails, no failover: another provider would get the same message); 401,
403, 404 (the domain), 429, 5xx, timeouts and connection errors retry and fail over to the
route's next provider. Connections go through the webhook address policy
(WEBHOOK_ALLOW_PRIVATE_TARGETS) on the guarded aiohttp session the push types use.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from email.utils import formataddr
from typing import Any

import aiohttp
import orjson
from pydantic import EmailStr, Field, SecretStr, field_validator

from app.channels.base import Outcome, OutcomeKind
from app.channels.ssrf import TargetRefused, TargetUnresolvable, webhook_refusal
from app.channels.webhook import parse_retry_after
from app.core.clock import utcnow
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
from app.providers.builtin.mailgun_events import verify_mailgun_events
from app.providers.builtin.push_http import GuardedHttp, reply_of

US_API = "https://api.mailgun.net"
EU_API = "https://api.eu.mailgun.net"
#: Recipients per Messages API call (Mailgun's batch sending limit).
MAX_RECIPIENTS_PER_CALL = 1000
# Calls of one `send` in flight at once (a batch spanning several notifications is one
# call per notification).
CALLS_IN_FLIGHT = 4
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


class MailgunSettings(HttpProviderSettings):
    """`{"api_key", "domain", "base_url", "webhook_signing_key", "from_email", "from_name"}`:
    the account's private API key (secret), its sending domain, the API host (US by
    default; `https://api.eu.mailgun.net` for EU domains), the HTTP webhook signing key
    (secret; without it delivery events are refused) and the sender."""

    api_key: SecretStr
    domain: str = Field(min_length=3, max_length=253)
    base_url: str = US_API
    webhook_signing_key: SecretStr | None = None
    from_email: EmailStr
    from_name: str | None = Field(default=None, max_length=200)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not _DOMAIN.match(value):
            raise ValueError("domain must be a DNS name such as mg.example.com")
        return value.lower()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or any(ord(c) <= 0x20 for c in value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret or any(ord(c) <= 0x20 for c in secret):
            raise ValueError("api_key must be a non-empty key without spaces")
        return value


class MailgunProvider(BaseProviderType):
    """Sends batches through Mailgun's Messages API on the guarded aiohttp session."""

    type = "mailgun"
    channel = "email"
    settings_model = MailgunSettings
    max_batch = MAX_RECIPIENTS_PER_CALL

    def __init__(self, http: GuardedHttp) -> None:
        self._http = http

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """One call per group of messages sharing content and unique in address."""
        settings = account.settings
        assert isinstance(settings, MailgunSettings)
        outcomes: list[ProviderOutcome | None] = [None] * len(messages)
        limit = asyncio.Semaphore(CALLS_IN_FLIGHT)

        async def one(indexes: list[int]) -> None:
            async with limit:
                answer = await self._call(settings, [messages[i] for i in indexes])
            for i in indexes:
                outcomes[i] = answer

        await asyncio.gather(*(one(call) for call in calls(messages)))
        return [o for o in outcomes if o is not None]

    async def _call(
        self, settings: MailgunSettings, messages: list[ProviderMessage]
    ) -> ProviderOutcome:
        url = f"{settings.base_url}/v3/{settings.domain}/messages"
        try:
            async with (
                self._http.slots,
                self._http.session().post(
                    url,
                    data=form(settings, messages),
                    headers=_auth(settings),
                    allow_redirects=False,
                ) as response,
            ):
                text = await response.text(errors="replace")
                status, retry_after = response.status, response.headers.get("retry-after")
        except Exception as exc:
            return network_outcome(exc, self._http.timeout)
        return classify(status, retry_after, text)

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """With `to`: a real test message; without: `GET /v3/domains/{domain}` proves the
        key and the domain."""
        settings = account.settings
        assert isinstance(settings, MailgunSettings)
        if to is not None:
            test = ProviderMessage(
                delivery_id="test",
                notification_id="test",
                client_id=account.client_id,
                address=to,
                content={
                    "subject": "ChatAPI test message",
                    "text": f"This test message was sent through the provider {account.name!r}.",
                },
                created_at=utcnow(),
            )
            answer = await self._call(settings, [test])
            if not answer.outcome.delivered:
                raise ProviderCheckFailed(answer.outcome.error or "Mailgun refused the message")
            return f"test message to {to} accepted by Mailgun ({answer.provider_message_id})"
        url = f"{settings.base_url}/v3/domains/{settings.domain}"
        try:
            async with self._http.session().get(
                url, headers=_auth(settings), allow_redirects=False
            ) as response:
                status = response.status
                text = await response.text(errors="replace")
        except Exception as exc:
            raise ProviderCheckFailed(
                network_outcome(exc, self._http.timeout).outcome.error or "unreachable"
            ) from None
        if status != 200:
            raise ProviderCheckFailed(f"Mailgun answered HTTP {status}: {_message(text)}")
        return f"API key and domain {settings.domain} accepted by Mailgun"

    def verify_events(
        self, account: ProviderAccount, request: SignedRequest
    ) -> list[ProviderEvent]:
        """Mailgun's webhook: HMAC-SHA256 over timestamp + token (app/providers/builtin/
        mailgun_events.py)."""
        settings = account.settings
        assert isinstance(settings, MailgunSettings)
        key = settings.webhook_signing_key
        return verify_mailgun_events(key.get_secret_value() if key else None, request)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()


def calls(messages: Sequence[ProviderMessage]) -> list[list[int]]:
    """The messages' indexes grouped into calls: one content per call (a batch may span
    notifications), each address at most once per call (recipient variables are keyed by
    address), at most MAX_RECIPIENTS_PER_CALL each."""
    by_content: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(messages):
        by_content[_content_key(m)].append(i)
    out: list[list[int]] = []
    for indexes in by_content.values():
        rounds: list[list[int]] = []
        seen: list[set[str]] = []
        for i in indexes:
            address = messages[i].address.lower()
            # The first call that does not have this address yet (and has room).
            for k, addresses in enumerate(seen):
                if address not in addresses and len(rounds[k]) < MAX_RECIPIENTS_PER_CALL:
                    addresses.add(address)
                    rounds[k].append(i)
                    break
            else:
                seen.append({address})
                rounds.append([i])
        out.extend(rounds)
    return out


def _content_key(message: ProviderMessage) -> str:
    # Deliveries of one notification share its content; the key also covers content that
    # differs while the notification is the same (never, but the call must be right).
    return message.notification_id + "\0" + orjson.dumps(dict(message.content)).decode()


def form(settings: MailgunSettings, messages: Sequence[ProviderMessage]) -> list[tuple[str, str]]:
    """The Messages API form of one call (application/x-www-form-urlencoded)."""
    content: Mapping[str, Any] = messages[0].content
    sender = content.get("from") or formataddr((settings.from_name or "", settings.from_email))
    fields: list[tuple[str, str]] = [("from", sender)]
    fields.extend(("to", m.address) for m in messages)
    fields.append(("subject", str(content.get("subject", ""))))
    for part in ("text", "html"):
        if content.get(part) is not None:
            fields.append((part, str(content[part])))
    variables = {
        m.address: {"delivery_id": m.delivery_id, "notification_id": m.notification_id}
        for m in messages
    }
    fields.append(("recipient-variables", orjson.dumps(variables).decode()))
    # Custom variables: every event of each recipient's message carries them back.
    fields.append(("v:delivery_id", "%recipient.delivery_id%"))
    fields.append(("v:notification_id", "%recipient.notification_id%"))
    fields.append(("o:tag", "chatapi"))
    return fields


def _auth(settings: MailgunSettings) -> dict[str, str]:
    """HTTP basic auth `api:<api_key>` (the header itself: aiohttp's `auth=` is deprecated)."""
    pair = f"api:{settings.api_key.get_secret_value()}".encode()
    return {"authorization": "Basic " + base64.b64encode(pair).decode()}


def _message(text: str | None) -> str:
    """Mailgun's `message` from an error body, else the body itself (cut)."""
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return (reply_of(text) or "")[:300]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return (reply_of(text) or "")[:300]


def classify(status: int, retry_after: str | None, text: str | None) -> ProviderOutcome:
    """Mailgun's answer to one call, as every recipient's outcome."""
    reply = reply_of(text)
    if status == 200:
        message_id = None
        try:
            body = orjson.loads(text or "")
            if isinstance(body, dict) and isinstance(body.get("id"), str):
                message_id = body["id"]
        except orjson.JSONDecodeError:
            pass
        return ProviderOutcome(
            Outcome(OutcomeKind.DELIVERED, response_code=status, reply=reply),
            provider_message_id=message_id,
        )
    error = f"HTTP {status}: {_message(text)}"
    if status == 400 or status == 413:
        # About the request (an address, the size): another provider would refuse it too.
        return ProviderOutcome(
            Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error)
        )
    # 401/403 (the key), 404 (the domain), 429 (the account's rate), 5xx: Mailgun's side or
    # the account's configuration. Retried, and the route's next provider takes it now.
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


def network_outcome(exc: BaseException, timeout: float) -> ProviderOutcome:
    """A connection that did not give an answer: retried, failing over."""
    if isinstance(exc, TargetRefused):
        return ProviderOutcome(
            Outcome(OutcomeKind.FAILED, error=webhook_refusal(exc)), fail_over=True
        )
    if isinstance(exc, TargetUnresolvable):
        return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=str(exc)), fail_over=True)
    if isinstance(exc, asyncio.TimeoutError):
        error = f"timeout: no answer within {timeout}s"
        return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
    if isinstance(exc, aiohttp.ClientError):
        error = f"{type(exc).__name__}: {exc}"
        return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
    raise exc


def create(ctx: ProviderFactoryContext) -> MailgunProvider:
    """Entry point `mailgun`."""
    return MailgunProvider(GuardedHttp.from_context(ctx))
