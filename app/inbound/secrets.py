"""The SecretBox inbound hook secrets are sealed with, and the secrets themselves.

`box_for(settings)` stands in for the runtime's shared box until the relay's
`Runtime.secret_box` is merged: SECRET_KEY seals; outside production with no SECRET_KEY a
fixed development key does, with a warning (production refuses to start without one).
"""

from __future__ import annotations

import base64
import logging
import secrets as random

from app.core.config import Settings
from app.core.crypto import SecretBox

log = logging.getLogger("chatapi.inbound")

SECRET_PREFIX = "whsec_"
# Only ever used when SECRET_KEY is unset outside production (config refuses that there).
DEVELOPMENT_KEY = "chatapi-development-key-not-for-production-use"


def box_for(settings: Settings) -> SecretBox:
    """The box sealing this deployment's stored secrets."""
    if settings.SECRET_KEY:
        return SecretBox(settings.SECRET_KEY)
    if settings.ENVIRONMENT == "production":  # unreachable: Settings refuses it
        raise ValueError("SECRET_KEY is required in production")
    log.warning("SECRET_KEY is unset: inbound webhook secrets are sealed with a development key")
    return SecretBox(DEVELOPMENT_KEY)


def new_secret() -> str:
    """A new hook secret, `whsec_` + base64 of 24 random bytes (Standard Webhooks form).

    GitHub, Stripe and plain HMAC senders use the whole string as their key; Standard
    Webhooks senders use the base64-decoded part, as that specification says.
    """
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(24)).decode()
