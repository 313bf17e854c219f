"""Hook secrets: their form, and the box they are sealed with."""

from __future__ import annotations

import base64
import logging

import pytest

from app.core.crypto import SecretBox
from app.inbound.secrets import DEVELOPMENT_KEY, box_for, new_secret
from tests.conftest import make_settings


def test_new_secret_is_standard_webhooks_form_with_24_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert new_secret() != secret


def test_box_seals_with_secret_key() -> None:
    key = "k" * 40
    sealed = box_for(make_settings("sqlite+aiosqlite://", SECRET_KEY=key)).seal("whsec_x")
    assert SecretBox(key).open(sealed) == "whsec_x"


def test_box_without_secret_key_outside_production_uses_the_development_key_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatapi.inbound"):
        sealed = box_for(make_settings("sqlite+aiosqlite://", SECRET_KEY=None)).seal("whsec_x")
    assert SecretBox(DEVELOPMENT_KEY).open(sealed) == "whsec_x"
    assert "SECRET_KEY is unset" in caplog.text
