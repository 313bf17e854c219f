"""Secrets at rest (SMTP passwords, webhook secrets), sealed with a key derived from SECRET_KEY.

A sealed value is `v1:<Fernet token>`: Fernet (AES-128-CBC + HMAC-SHA256, authenticated) with a
key derived from SECRET_KEY by HKDF-SHA256. The version prefix names the derivation, so a later
scheme can be added next to this one and old values still open; `previous_keys` lets an operator
rotate SECRET_KEY while values sealed with the old key are re-sealed lazily.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1"
# Binds the derived key to this one purpose: the same SECRET_KEY used elsewhere (e.g. for
# signing) yields an unrelated key.
_INFO = b"chatapi/secrets-at-rest/v1"


class SecretBoxError(Exception):
    """A sealed value cannot be opened: altered, truncated, or sealed under another key."""


def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise ValueError("SecretBox needs a non-empty SECRET_KEY")
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(raw))


class SecretBox:
    """Seals and opens short strings with a key derived from SECRET_KEY."""

    def __init__(self, secret_key: str, previous_keys: tuple[str, ...] = ()) -> None:
        # MultiFernet encrypts with the first key and decrypts with any of them.
        self._current = _fernet(secret_key)
        self._fernet = MultiFernet([self._current, *(_fernet(k) for k in previous_keys)])

    def seal(self, plaintext: str) -> str:
        """The encrypted, authenticated form of `plaintext`, safe to store."""
        return f"{VERSION}:{self._fernet.encrypt(plaintext.encode()).decode()}"

    def open(self, sealed: str) -> str:
        """The plaintext of a value made by `seal`; raises SecretBoxError otherwise."""
        version, sep, token = sealed.partition(":")
        if not sep or version != VERSION:
            raise SecretBoxError(f"not a sealed secret of version {VERSION!r}")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretBoxError(
                "cannot open sealed secret: it was altered or sealed with another SECRET_KEY"
            ) from None

    def needs_reseal(self, sealed: str) -> bool:
        """True when `sealed` opens only with a previous key (re-seal it with the current one)."""
        version, _, token = sealed.partition(":")
        if version != VERSION:
            return True
        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return True
        return False
