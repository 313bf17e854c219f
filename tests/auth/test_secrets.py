"""The key format and bcrypt through passlib with the pinned bcrypt."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest

from app.auth.secrets import fingerprint, hash_secret, new_key, parse_key, verify_secret


def test_pinned_bcrypt_works_with_passlib_without_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # passlib 1.7.4 reads bcrypt.__about__ (gone in bcrypt 4.1) and its self-test hashes a
    # >72-byte secret (bcrypt 5 raises): the pin must keep both quiet and working.
    assert version("passlib") == "1.7.4"
    assert version("bcrypt") == "4.0.1"
    with caplog.at_level(logging.DEBUG, logger="passlib"):
        hashed = hash_secret("correct horse", rounds=4)
        assert verify_secret("correct horse", hashed)
        assert not verify_secret("wrong horse", hashed)
    assert hashed.startswith("$2b$04$")
    assert not [r for r in caplog.records if "error reading bcrypt version" in r.getMessage()]


def test_new_keys_parse_back_and_secrets_never_repeat() -> None:
    presented, parts = new_key()
    assert presented == f"ck_{parts.key_id}_{parts.secret}"
    assert parse_key(presented) == parts
    assert new_key()[1].secret != parts.secret
    assert len(fingerprint(presented)) == 64 and parts.secret not in fingerprint(presented)


@pytest.mark.parametrize(
    "presented", ["", "ck", "ck_", "xk_0123456789abcdef_s", "ck_short_s", "ck_0123456789abcdef_"]
)
def test_malformed_keys_do_not_parse(presented: str) -> None:
    assert parse_key(presented) is None
