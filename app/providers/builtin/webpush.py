"""Provider type `webpush`: Web Push (RFC 8030) to browsers' push services, the payload
encrypted for the subscription (RFC 8291, aes128gcm) and the request signed with the
tenant's VAPID key (RFC 8292) — by `pywebpush` and `py-vapid`, not by code of ours.

The subscription's endpoint is a URL the browser handed over: every connection to it goes
through the webhook address policy (WEBHOOK_ALLOW_PRIVATE_TARGETS). 201/202 delivers; 404 and
410 say the subscription is gone (the channel removes it); 429 and 5xx retry (after
Retry-After when given); 400 and 413 fail for good.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode
from pydantic import Field, SecretStr, field_validator
from pywebpush import WebPusher, WebPushException

from app.channels.base import Outcome, OutcomeKind
from app.channels.ssrf import TargetRefused, TargetUnresolvable, webhook_refusal
from app.channels.webhook import parse_retry_after
from app.core.clock import utcnow
from app.providers.base import (
    BaseProviderType,
    ProviderAccount,
    ProviderCheckFailed,
    ProviderFactoryContext,
    ProviderMessage,
    ProviderOutcome,
    ProviderSettings,
)
from app.providers.builtin.push_http import GuardedHttp, reply_of

# RFC 8292 §2: a VAPID token lives at most 24 hours; 12 leaves room for clock skew.
VAPID_LIFETIME_SECONDS = 12 * 3600
DEFAULT_TTL_SECONDS = 86_400
MAX_TTL_SECONDS = 28 * 86_400  # what push services keep at most (FCM: 4 weeks)


def load_vapid(key: str) -> Vapid02:
    """The VAPID key from a PEM private key or base64url (raw 32-byte scalar or DER)."""
    text = key.strip()
    try:
        if text.startswith("-----BEGIN"):
            return Vapid02.from_pem(text.encode())
        return Vapid02.from_string(text)
    except Exception as exc:  # py-vapid raises whatever its decoders raise
        raise ValueError(
            f"not a P-256 private key (PEM or base64url): {type(exc).__name__}"
        ) from None


def public_key(vapid: Vapid02) -> str:
    """The VAPID public key as browsers take it (`applicationServerKey`, base64url)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return str(b64urlencode(raw))


class WebPushSettings(ProviderSettings):
    """`{"vapid_private_key", "vapid_subject", "ttl"}`: the VAPID key (secret), the contact
    push services may reach (`mailto:` or an https URL) and how long a push service keeps a
    message for an offline browser."""

    vapid_private_key: SecretStr
    vapid_subject: str = Field(min_length=8, max_length=320)
    ttl: int = Field(default=DEFAULT_TTL_SECONDS, ge=0, le=MAX_TTL_SECONDS)

    @field_validator("vapid_private_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        load_vapid(value.get_secret_value())
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if any(ord(c) <= 0x20 for c in value):
            raise ValueError("vapid_subject must not contain spaces or control characters")
        if value.startswith("mailto:") and "@" in value:
            return value
        if value.startswith("https://") and urlsplit(value).hostname:
            return value
        raise ValueError("vapid_subject must be a mailto: address or an https:// URL (RFC 8292)")


class WebPushProvider(BaseProviderType):
    """Sends through `pywebpush` on the guarded aiohttp session."""

    type = "webpush"
    channel = "push"
    settings_model = WebPushSettings
    subscription_kind = "webpush"
    # One request per subscription: a batch is sent concurrently (bounded by the client).
    max_batch = 100

    def __init__(self, http: GuardedHttp) -> None:
        self._http = http
        # Loaded keys by digest: parsing a PEM per message would cost more than the send.
        self._keys: dict[str, Vapid02] = {}

    def _vapid(self, settings: WebPushSettings) -> Vapid02:
        secret = settings.vapid_private_key.get_secret_value()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        vapid = self._keys.get(digest)
        if vapid is None:
            vapid = self._keys[digest] = load_vapid(secret)
        return vapid

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """One encrypted, signed POST per subscription, concurrently."""
        settings = account.settings
        assert isinstance(settings, WebPushSettings)
        return list(await asyncio.gather(*(self._one(settings, m) for m in messages)))

    async def _one(self, settings: WebPushSettings, message: ProviderMessage) -> ProviderOutcome:
        subscription = dict(message.subscription or {})
        endpoint = subscription.get("endpoint")
        keys = subscription.get("keys") or {}
        if not isinstance(endpoint, str) or not keys.get("p256dh") or not keys.get("auth"):
            return _failed("not a Web Push subscription (endpoint and keys needed)")
        parts = urlsplit(endpoint)
        claims: dict[str, Any] = {
            "sub": settings.vapid_subject,
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(utcnow().timestamp()) + VAPID_LIFETIME_SECONDS,
        }
        data = orjson.dumps(
            {
                **message.content,
                "notification_id": message.notification_id,
                "delivery_id": message.delivery_id,
            }
        )
        try:
            headers: dict[str, str] = self._vapid(settings).sign(claims)
            pusher = WebPusher(
                {"endpoint": endpoint, "keys": keys}, aiohttp_session=self._http.session()
            )
        except (WebPushException, ValueError, TypeError) as exc:
            return _failed(f"cannot prepare the push: {exc}")
        try:
            async with self._http.slots:
                response = await pusher.send_async(
                    data,
                    headers,
                    ttl=settings.ttl,
                    content_encoding="aes128gcm",
                    timeout=self._http.timeout,
                )
                assert isinstance(response, aiohttp.ClientResponse)
                text = await response.text(errors="replace")
        except TargetRefused as exc:
            return _failed(webhook_refusal(exc))
        except TargetUnresolvable as exc:
            return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=str(exc)), fail_over=True)
        except asyncio.TimeoutError:
            error = f"timeout: no answer within {self._http.timeout}s"
            return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
            return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
        return classify(
            response.status,
            response.headers.get("retry-after"),
            text,
            response.headers.get("location"),
        )

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """The key loads: its public key is what browsers subscribe with."""
        settings = account.settings
        assert isinstance(settings, WebPushSettings)
        try:
            vapid = self._vapid(settings)
        except ValueError as exc:
            raise ProviderCheckFailed(str(exc)) from None
        return f"VAPID key loaded; applicationServerKey: {public_key(vapid)}"

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()


def classify(
    status: int, retry_after: str | None, text: str | None, location: str | None = None
) -> ProviderOutcome:
    """A push service's answer (RFC 8030 §5, §8.3) as an outcome."""
    reply = reply_of(text)
    if 200 <= status < 300:
        return ProviderOutcome(
            Outcome(OutcomeKind.DELIVERED, response_code=status, reply=reply or location),
            provider_message_id=location,
        )
    if status in (404, 410):
        error = f"HTTP {status}: the subscription is gone"
        return ProviderOutcome(
            Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error), gone=True
        )
    if status == 429 or status >= 500:
        return ProviderOutcome(
            Outcome(
                OutcomeKind.RETRY,
                retry_after=parse_retry_after(retry_after, utcnow()),
                response_code=status,
                reply=reply,
                error=f"HTTP {status}",
            ),
            # A push service's own trouble: another provider of the route may get through.
            fail_over=status >= 500,
        )
    error = f"HTTP {status}"
    if status in (401, 403):
        # The VAPID key was refused (not the one the browser subscribed with, or malformed):
        # the account's configuration, so the route's next provider may hold the right key.
        error += ": the push service refused the VAPID signature"
        return ProviderOutcome(
            Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error),
            fail_over=True,
        )
    if status == 413:
        error += ": the payload is too large for the push service"
    return ProviderOutcome(
        Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error)
    )


def _failed(error: str) -> ProviderOutcome:
    return ProviderOutcome(Outcome(OutcomeKind.FAILED, error=error))


def create(ctx: ProviderFactoryContext) -> WebPushProvider:
    """Entry point `webpush`."""
    return WebPushProvider(GuardedHttp.from_context(ctx))
