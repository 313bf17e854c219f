"""Hook secrets: their form, and the box they are sealed with."""

from __future__ import annotations

import base64

from app.inbound.secrets import new_secret


def test_new_secret_is_standard_webhooks_form_with_24_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert new_secret() != secret
