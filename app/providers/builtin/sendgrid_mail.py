"""SendGrid's v3 Mail Send request and answers (https://www.twilio.com/docs/sendgrid/api-reference/mail-send).

One request carries one message (`from`, `subject`, `content`) to up to 1,000
personalizations; each of our deliveries is one personalization with its own `to` and
`custom_args: {"delivery_id"}`, which SendGrid copies into every Event Webhook event of that
recipient. Deliveries whose content differs cannot share a request (`group_key`).

Answers: 2xx accepts every personalization (`X-Message-Id` names the request); 400 and 413
are about the request itself, so another provider would refuse it too: failed, with
SendGrid's `errors[].message`; 401, 403, 429 and 5xx are about the account or the service:
retried and failed over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from app.channels.base import Outcome, OutcomeKind
from app.channels.ssrf import TargetRefused, TargetUnresolvable, webhook_refusal
from app.channels.webhook import MAX_RETRY_AFTER_SECONDS, parse_retry_after
from app.providers.base import ProviderMessage, ProviderOutcome
from app.providers.builtin.push_http import reply_of

if TYPE_CHECKING:
    from app.providers.builtin.sendgrid import SendGridSettings

# SendGrid's limit: personalizations (and recipients) per request.
MAX_PERSONALIZATIONS = 1000
# SendGrid's error messages, joined, are kept up to this long in an attempt's error.
MAX_ERROR_CHARS = 1000


def group_key(content: Mapping[str, Any]) -> tuple[Any, ...]:
    """What deliveries must share to go in one request."""
    return (content.get("from"), content.get("subject"), content.get("text"), content.get("html"))


def sender(settings: SendGridSettings, override: str | None) -> dict[str, str]:
    """`from`: the content's `from` ("Name <address>" or an address) or the settings'."""
    if override:
        name, address = parseaddr(override)
        if "@" not in address:
            raise ValueError(f"`from` is not an e-mail address: {override!r}")
        return {"email": address, "name": name} if name else {"email": address}
    out = {"email": str(settings.from_email)}
    if settings.from_name:
        out["name"] = settings.from_name
    return out


def mail_body(settings: SendGridSettings, messages: Sequence[ProviderMessage]) -> dict[str, Any]:
    """The Mail Send JSON for messages sharing one content (ValueError when it cannot be
    sent: a bad `from`, no body)."""
    content = messages[0].content
    parts = [
        {"type": kind, "value": content[key]}
        # SendGrid wants text/plain first, and no empty part.
        for kind, key in (("text/plain", "text"), ("text/html", "html"))
        if isinstance(content.get(key), str) and content[key]
    ]
    if not parts:
        raise ValueError("e-mail content needs a non-empty text or html")
    return {
        "personalizations": [
            {"to": [{"email": m.address}], "custom_args": {"delivery_id": m.delivery_id}}
            for m in messages
        ],
        "from": sender(settings, content.get("from")),
        "subject": str(content.get("subject") or ""),
        "content": parts,
    }


def error_messages(text: str | None) -> str | None:
    """SendGrid's `errors[].message` (with its `field`), joined."""
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return None
    said = []
    for error in errors:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            continue
        field = error.get("field")
        said.append(f"{field}: {error['message']}" if isinstance(field, str) else error["message"])
    return "; ".join(said)[:MAX_ERROR_CHARS] or None


def classify(
    status: int, headers: Mapping[str, str], text: str | None, now: datetime
) -> ProviderOutcome:
    """SendGrid's answer to one request, the outcome of each of its personalizations."""
    reply = reply_of(text)
    message_id = headers.get("x-message-id") or None
    if 200 <= status < 300:
        return ProviderOutcome(
            Outcome(OutcomeKind.DELIVERED, response_code=status, reply=message_id or reply),
            provider_message_id=message_id,
        )
    said = error_messages(text)
    error = f"HTTP {status}" + (f": {said}" if said else "")
    if status in (400, 413):
        # The request itself (a field, the size): the next provider would get the same.
        return ProviderOutcome(
            Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error)
        )
    if status in (401, 403, 429) or status >= 500:
        # A revoked key, a missing scope or an unverified sender, the account's rate limit,
        # the service's trouble: another account may get through, and this one later.
        return ProviderOutcome(
            Outcome(
                OutcomeKind.RETRY,
                retry_after=_retry_after(headers, now) if status == 429 else None,
                response_code=status,
                reply=reply,
                error=error,
            ),
            fail_over=True,
        )
    # Anything else (404, 405: a base_url that is not SendGrid's API) is the configuration.
    return ProviderOutcome(
        Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error),
        fail_over=True,
    )


def _retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """When the rate limit resets: Retry-After, else X-RateLimit-Reset (a Unix time)."""
    after = parse_retry_after(headers.get("retry-after"), now)
    if after is not None:
        return after
    reset = headers.get("x-ratelimit-reset", "")
    if not reset.isdigit():
        return None
    return min(max(int(reset) - now.timestamp(), 0.0), MAX_RETRY_AFTER_SECONDS)


def network_outcome(exc: BaseException, timeout: float) -> ProviderOutcome:
    """A request that got no answer: the service (or the way to it) failed; a bug re-raises."""
    if isinstance(exc, TargetRefused):
        # The address policy refused base_url: this account cannot work, another may.
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
