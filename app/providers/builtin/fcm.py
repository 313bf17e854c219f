"""Provider type `fcm`: Firebase Cloud Messaging's HTTP v1 API.

Authenticated as the tenant's service account with the OAuth 2.0 JWT bearer flow (RFC 7523):
an RS256 assertion signed by PyJWT with the account's private key is exchanged at
`token_url` for an access token, cached until shortly before it expires. Each message is one
`POST {base_url}/v1/projects/{project_id}/messages:send`. 200 delivers (the reply is the
message's `name`); 404 `UNREGISTERED` and 400 `INVALID_ARGUMENT` about the token say the
token is gone (the channel removes it); 401 refreshes the token once, then fails over; 429
and 5xx retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, SecretStr, field_validator

from app.channels.base import Outcome, OutcomeKind
from app.channels.webhook import parse_retry_after
from app.core.clock import utcnow
from app.providers.base import (
    BaseProviderType,
    HttpProviderSettings,
    ProviderAccount,
    ProviderCheckFailed,
    ProviderFactoryContext,
    ProviderMessage,
    ProviderOutcome,
)
from app.providers.builtin.push_http import GuardedHttp, reply_of
from app.providers.builtin.push_http import network_outcome as _network

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ASSERTION_LIFETIME = timedelta(hours=1)  # Google's maximum
# A cached token is renewed this long before it expires (a send must not race its expiry).
TOKEN_MARGIN = timedelta(minutes=5)
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")


class FcmAuthError(Exception):
    """The token endpoint refused the service account (or could not be reached)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


def service_account(text: str) -> dict[str, str]:
    """The service account JSON's fields this type uses, checked."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("service_account_json is not JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError("service_account_json must be a JSON object")
    missing = [k for k in ("client_email", "private_key") if not isinstance(parsed.get(k), str)]
    if missing:
        raise ValueError(f"service_account_json lacks {', '.join(missing)}")
    try:
        key = load_pem_private_key(parsed["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("service_account_json's private_key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("service_account_json's private_key must be an RSA key")
    return {
        "client_email": parsed["client_email"],
        "private_key": parsed["private_key"],
        "private_key_id": str(parsed.get("private_key_id") or ""),
    }


class FcmSettings(HttpProviderSettings):
    """`{"project_id", "service_account_json", "base_url", "token_url"}`: the Firebase
    project, its service account's key file (secret) and the API hosts (their defaults are
    Google's; both held to the webhook address policy)."""

    project_id: str = Field(min_length=6, max_length=63)
    service_account_json: SecretStr
    base_url: str = "https://fcm.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT_ID.match(value):
            raise ValueError("project_id must be a Google Cloud project id")
        return value

    @field_validator("service_account_json")
    @classmethod
    def _account(cls, value: SecretStr) -> SecretStr:
        service_account(value.get_secret_value())
        return value

    @field_validator("base_url", "token_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or any(ord(c) <= 0x20 for c in value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value.count("/") == 2 else value


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: datetime


class FcmProvider(BaseProviderType):
    """Sends through FCM HTTP v1 on the guarded aiohttp session."""

    type = "fcm"
    channel = "push"
    settings_model = FcmSettings
    subscription_kind = "fcm"
    max_batch = 100  # one request per token (v1 has no multicast), sent concurrently

    def __init__(self, http: GuardedHttp) -> None:
        self._http = http
        # Access tokens by (account, its credentials' digest): one exchange per hour.
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._token_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """One `messages:send` per token, concurrently."""
        settings = account.settings
        assert isinstance(settings, FcmSettings)
        try:
            await self._token(account, settings)
        except FcmAuthError as exc:
            return [ProviderOutcome(exc.outcome, fail_over=True)] * len(messages)
        return list(await asyncio.gather(*(self._one(account, settings, m) for m in messages)))

    async def _one(
        self, account: ProviderAccount, settings: FcmSettings, message: ProviderMessage
    ) -> ProviderOutcome:
        url = f"{settings.base_url.rstrip('/')}/v1/projects/{settings.project_id}/messages:send"
        body = orjson.dumps({"message": fcm_message(message)})
        refused: str | None = None
        while True:
            try:
                token = await self._token(account, settings, stale=refused)
                async with (
                    self._http.slots,
                    self._http.session().post(
                        url,
                        data=body,
                        headers={
                            "authorization": f"Bearer {token}",
                            "content-type": "application/json",
                        },
                        allow_redirects=False,
                    ) as response,
                ):
                    text = await response.text(errors="replace")
                    status, retry_after = response.status, response.headers.get("retry-after")
            except FcmAuthError as exc:
                return ProviderOutcome(exc.outcome, fail_over=True)
            except Exception as exc:
                return _network(exc, self._http.timeout)
            if status == 401 and refused is None:
                # Revoked or expired early: one new token, within the same attempt.
                refused = token
                continue
            return classify(status, retry_after, text)

    async def _token(
        self, account: ProviderAccount, settings: FcmSettings, *, stale: str | None = None
    ) -> str:
        """The account's access token: the cached one unless it is about to expire or is
        `stale` (FCM answered 401 to it); one exchange at a time per account, so a batch
        whose token was refused renews it once."""
        secret = settings.service_account_json.get_secret_value()
        key = _cache_key(account, settings)
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            now = utcnow()
            cached = self._tokens.get(key)
            if (
                cached is not None
                and cached.value != stale
                and cached.expires_at - TOKEN_MARGIN > now
            ):
                return cached.value
            token = await self._exchange(settings, secret, now)
            self._tokens[key] = token
            return token.value

    async def _exchange(self, settings: FcmSettings, secret: str, now: datetime) -> _Token:
        sa = service_account(secret)
        assertion = jwt.encode(
            {
                "iss": sa["client_email"],
                "scope": SCOPE,
                "aud": settings.token_url,
                "iat": int(now.timestamp()),
                "exp": int((now + ASSERTION_LIFETIME).timestamp()),
            },
            sa["private_key"],
            algorithm="RS256",
            headers={"kid": sa["private_key_id"]} if sa["private_key_id"] else None,
        )
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        try:
            async with self._http.session().post(
                settings.token_url, data=form, allow_redirects=False
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except Exception as exc:
            raise FcmAuthError(_network(exc, self._http.timeout).outcome) from None
        if status != 200:
            kind = OutcomeKind.RETRY if status == 429 or status >= 500 else OutcomeKind.FAILED
            error = f"the token endpoint answered HTTP {status}"
            raise FcmAuthError(
                Outcome(kind, response_code=status, reply=reply_of(text), error=error)
            )
        try:
            answer = orjson.loads(text)
            value = str(answer["access_token"])
            lifetime = float(answer.get("expires_in", 3600))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise FcmAuthError(
                Outcome(OutcomeKind.FAILED, error="the token endpoint's answer has no access_token")
            ) from None
        return _Token(value, now + timedelta(seconds=lifetime))

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """Exchange the service account for an access token (no message is sent)."""
        settings = account.settings
        assert isinstance(settings, FcmSettings)
        try:
            await self._token(account, settings, stale=self._cached(account, settings))
        except FcmAuthError as exc:
            raise ProviderCheckFailed(str(exc)) from None
        return f"service account accepted by {settings.token_url}"

    def _cached(self, account: ProviderAccount, settings: FcmSettings) -> str | None:
        cached = self._tokens.get(_cache_key(account, settings))
        return cached.value if cached is not None else None

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._http.aclose()


def _cache_key(account: ProviderAccount, settings: FcmSettings) -> tuple[str, str]:
    # New credentials (or another token endpoint) for the same account get a new token.
    secret = settings.service_account_json.get_secret_value()
    return account.id, hashlib.sha256((secret + settings.token_url).encode()).hexdigest()


def fcm_message(message: ProviderMessage) -> dict[str, Any]:
    """The v1 `message`: the token, `notification` {title, body} and `data` (FCM takes only
    string values: other JSON values are sent as their JSON text)."""
    content: Mapping[str, Any] = message.content
    data: dict[str, str] = {}
    for key, value in (content.get("data") or {}).items():
        data[str(key)] = value if isinstance(value, str) else orjson.dumps(value).decode()
    for key in ("url", "icon"):
        if isinstance(content.get(key), str):
            data[key] = content[key]
    data["notification_id"] = message.notification_id
    data["delivery_id"] = message.delivery_id
    return {
        "token": message.address,
        "notification": {"title": content.get("title", ""), "body": content.get("body", "")},
        "data": data,
    }


def classify(status: int, retry_after: str | None, text: str | None) -> ProviderOutcome:
    """FCM's answer as an outcome (its error codes: `error.details[].errorCode`)."""
    reply = reply_of(text)
    error_body = _error(text)
    code = error_body.get("code")
    if status == 200:
        name = _name(text)
        return ProviderOutcome(
            Outcome(OutcomeKind.DELIVERED, response_code=status, reply=name or reply),
            provider_message_id=name,
        )
    error = f"HTTP {status}" + (f" {code}" if code else "")
    if (status == 404 and code == "UNREGISTERED") or (
        status == 400 and code == "INVALID_ARGUMENT" and error_body.get("about_token")
    ):
        return ProviderOutcome(
            Outcome(
                OutcomeKind.FAILED, response_code=status, reply=reply, error=error + ": token gone"
            ),
            gone=True,
        )
    if status == 429 or status >= 500:
        return ProviderOutcome(
            Outcome(
                OutcomeKind.RETRY,
                retry_after=parse_retry_after(retry_after, utcnow()),
                response_code=status,
                reply=reply,
                error=error,
            ),
            fail_over=status >= 500,
        )
    # 401 after a fresh token, 403 (SENDER_ID_MISMATCH, permission), a 404 project: the
    # account's configuration, so the route's next provider may serve the token.
    fail_over = status in (401, 403, 404)
    return ProviderOutcome(
        Outcome(OutcomeKind.FAILED, response_code=status, reply=reply, error=error),
        fail_over=fail_over,
    )


def _error(text: str | None) -> dict[str, Any]:
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return {}
    out: dict[str, Any] = {"code": error.get("status")}
    for detail in error.get("details") or ():
        if not isinstance(detail, dict):
            continue
        if detail.get("errorCode"):
            out["code"] = detail["errorCode"]
        for violation in detail.get("fieldViolations") or ():
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                out["about_token"] = True
    return out


def _name(text: str | None) -> str | None:
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def create(ctx: ProviderFactoryContext) -> FcmProvider:
    """Entry point `fcm`."""
    return FcmProvider(GuardedHttp.from_context(ctx))
