"""Secrets at rest: SecretBox seals with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64

import pytest

from app.core.crypto import SecretBox, SecretBoxError

KEY = "k" * 40


def test_sealed_secret_opens_to_the_original_and_hides_it() -> None:
    box = SecretBox(KEY)
    sealed = box.seal("smtp-p4ss✓")
    assert sealed.startswith("v1:")
    assert "smtp-p4ss" not in sealed
    assert box.open(sealed) == "smtp-p4ss✓"
    # A fresh IV each time: equal secrets do not give equal ciphertexts.
    assert box.seal("smtp-p4ss✓") != sealed


def test_altered_sealed_secret_is_refused() -> None:
    box = SecretBox(KEY)
    sealed = box.seal("whsec_abc")
    token = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    token[40] ^= 0x01  # flip one ciphertext bit
    tampered = "v1:" + base64.urlsafe_b64encode(bytes(token)).decode()
    with pytest.raises(SecretBoxError, match="altered or sealed with another SECRET_KEY"):
        box.open(tampered)


def test_secret_sealed_under_another_key_is_refused() -> None:
    sealed = SecretBox(KEY).seal("whsec_abc")
    with pytest.raises(SecretBoxError):
        SecretBox("another-secret-key-of-enough-length!").open(sealed)


def test_unknown_version_prefix_is_refused() -> None:
    sealed = SecretBox(KEY).seal("x")
    with pytest.raises(SecretBoxError, match="version"):
        SecretBox(KEY).open("v9:" + sealed[3:])
    with pytest.raises(SecretBoxError):
        SecretBox(KEY).open("plaintext")


def test_previous_key_opens_old_values_during_rotation() -> None:
    old = SecretBox("old-secret-key-" + "x" * 30)
    sealed_old = old.seal("s3cret")
    rotated = SecretBox(KEY, previous_keys=("old-secret-key-" + "x" * 30,))
    assert rotated.open(sealed_old) == "s3cret"
    assert rotated.needs_reseal(sealed_old)
    resealed = rotated.seal("s3cret")
    assert not rotated.needs_reseal(resealed)
    assert SecretBox(KEY).open(resealed) == "s3cret"
