"""A browser's side of Web Push for tests: its ECDH key pair and auth secret (RFC 8291), as
`PushManager.subscribe()` would make them."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as browsers serialize subscription keys."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class BrowserKeys:
    """The browser-held private key and auth secret of one subscription."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @property
    def p256dh(self) -> str:
        """The public key as the subscription JSON carries it."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    @property
    def auth(self) -> str:
        """The auth secret as the subscription JSON carries it."""
        return b64url(self.auth_secret)

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """The browser's `PushSubscription.toJSON()` for `endpoint`."""
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }
