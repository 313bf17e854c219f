"""Inbound hook secrets (sealed at rest with the runtime's SecretBox, app/core/secret_key.py)."""

from __future__ import annotations

import base64
import logging
import secrets as random

log = logging.getLogger("chatapi.inbound")

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A new hook secret, `whsec_` + base64 of 24 random bytes (Standard Webhooks form).

    GitHub, Stripe and plain HMAC senders use the whole string as their key; Standard
    Webhooks senders use the base64-decoded part, as that specification says.
    """
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(24)).decode()
