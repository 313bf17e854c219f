"""The presented key's format and the bcrypt hashing of its secret."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from passlib.hash import bcrypt

KEY_PREFIX = "ck"


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key split into its public id and its secret."""

    key_id: str
    secret: str


def new_key() -> tuple[str, PresentedKey]:
    """A fresh key: the full string shown once, and its parts."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{key_id}_{secret}", PresentedKey(key_id, secret)


def parse_key(presented: str) -> PresentedKey | None:
    """Split `ck_<key_id>_<secret>`; None when it is not of that form."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != 16 or not secret or len(secret) > 64:
        return None
    return PresentedKey(key_id, secret)


def hash_secret(secret: str, rounds: int = 12) -> str:
    """bcrypt hash of a secret (slow on purpose: call it off the event loop)."""
    return str(bcrypt.using(rounds=rounds).hash(secret))


def verify_secret(secret: str, secret_hash: str) -> bool:
    """Whether `secret` matches its bcrypt hash (slow: call it off the event loop)."""
    return bool(bcrypt.verify(secret, secret_hash))


def fingerprint(presented: str) -> str:
    """SHA-256 of the whole presented key: the cache key, never stored anywhere durable."""
    return hashlib.sha256(presented.encode()).hexdigest()
