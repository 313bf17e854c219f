"""Request and response shapes of `/me/push-subscriptions`."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.providers.models import PushSubscription

# RFC 8291 §3.1: the browser's ECDH key is an uncompressed P-256 point (0x04 || X || Y) and
# its authentication secret 16 random bytes, both base64url (padding optional).
P256DH_BYTES = 65
AUTH_BYTES = 16
MAX_ENDPOINT_LENGTH = 2048  # the column's size; real endpoints are a few hundred characters
MAX_FCM_TOKEN_LENGTH = 2048


def b64url_bytes(value: str, expected: int, what: str) -> bytes:
    """`value` decoded from base64url (padding optional), exactly `expected` bytes long."""
    if not value or any(c in value for c in "+/ \n") or len(value) > 2 * expected + 4:
        raise ValueError(f"{what} must be base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} must be base64url") from None
    if len(raw) != expected:
        raise ValueError(f"{what} must decode to {expected} bytes, not {len(raw)}")
    return raw


class PushKeys(BaseModel):
    """The subscription's `keys` (RFC 8291): the browser's public key and auth secret."""

    model_config = ConfigDict(extra="forbid")

    p256dh: str = Field(description="The browser's P-256 ECDH public key (65 bytes, base64url).")
    auth: str = Field(
        description="The authentication secret (16 bytes, base64url). Never returned."
    )

    @field_validator("p256dh")
    @classmethod
    def _p256dh(cls, value: str) -> str:
        raw = b64url_bytes(value, P256DH_BYTES, "keys.p256dh")
        if raw[0] != 0x04:
            raise ValueError("keys.p256dh must be an uncompressed P-256 point (0x04 …)")
        # Only a point on the curve can be used: refuse it now, not at every send.
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise ValueError("keys.p256dh is not a point on P-256") from None
        return value.rstrip("=")

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        b64url_bytes(value, AUTH_BYTES, "keys.auth")
        return value.rstrip("=")


class PushSubscriptionIn(BaseModel):
    """`POST /me/push-subscriptions`: the browser's `PushSubscription` JSON (Web Push), or
    `{"fcm_token": ...}` (a Firebase Cloud Messaging registration token)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "endpoint": "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91b…",
                    "expirationTime": None,
                    "keys": {
                        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                        "auth": "tBHItJI5svbpez7KI4CCXg",
                    },
                },
                {"fcm_token": "eQx1…:APA91bH…"},
            ]
        },
    )

    endpoint: str | None = Field(
        default=None, max_length=MAX_ENDPOINT_LENGTH, description="The push service URL (https)."
    )
    keys: PushKeys | None = None
    # The browser's own field (milliseconds since the epoch, or null); accepted, not used:
    # the push service answers 404/410 once the subscription has expired.
    expiration_time: float | None = Field(default=None, alias="expirationTime")
    fcm_token: str | None = Field(default=None, min_length=1, max_length=MAX_FCM_TOKEN_LENGTH)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(ord(c) <= 0x20 or c == "\x7f" for c in value):
            raise ValueError("endpoint must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme != "https":
            raise ValueError("endpoint must be an https:// URL (RFC 8030)")
        if not parts.hostname:
            raise ValueError("endpoint needs a host")
        if parts.username or parts.password:
            raise ValueError("endpoint must not carry credentials")
        try:
            parts.port  # noqa: B018 (raises on an invalid port)
        except ValueError:
            raise ValueError("endpoint has an invalid port") from None
        return value

    @field_validator("fcm_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
            raise ValueError("fcm_token must be printable ASCII without spaces")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> PushSubscriptionIn:
        if self.fcm_token is not None:
            if self.endpoint is not None or self.keys is not None:
                raise ValueError("send either a Web Push subscription or fcm_token, not both")
        elif self.endpoint is None or self.keys is None:
            raise ValueError("a Web Push subscription needs endpoint and keys (p256dh, auth)")
        return self

    @property
    def kind(self) -> Literal["webpush", "fcm"]:
        """`fcm` for a token, else `webpush`."""
        return "fcm" if self.fcm_token is not None else "webpush"

    @property
    def address(self) -> str:
        """What the subscription is unique by for its user: the endpoint or the token."""
        address = self.fcm_token if self.fcm_token is not None else self.endpoint
        assert address is not None  # the model validator checked
        return address


class PushSubscriptionOut(BaseModel):
    """A push subscription as its user sees it (the auth secret is never returned)."""

    id: str
    kind: Literal["webpush", "fcm"]
    endpoint: str | None = Field(description="The push service URL (webpush).")
    fcm_token: str | None = Field(description="The registration token (fcm).")
    p256dh: str | None = Field(description="The browser's public key (webpush).")
    user_agent: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: PushSubscription) -> PushSubscriptionOut:
        """The response shape of a stored row."""
        webpush = row.kind == "webpush"
        keys: dict[str, Any] = row.keys or {}
        return cls(
            id=row.id,
            kind="webpush" if webpush else "fcm",
            endpoint=row.endpoint if webpush else None,
            fcm_token=None if webpush else row.endpoint,
            p256dh=keys.get("p256dh") if webpush else None,
            user_agent=row.user_agent,
            created_at=row.created_at,
        )


class PushSubscriptionList(BaseModel):
    """The caller's push subscriptions, oldest first (a user has at most a few dozen)."""

    data: list[PushSubscriptionOut]
