"""Who is calling: the result of authenticating a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class KeyKind(str, Enum):
    """What a key may do."""

    master = "master"
    user = "user"
    admin = "admin"


class Scope(str, Enum):
    """Permissions a user key can carry; master keys have all of them."""

    rooms_read = "rooms:read"
    rooms_write = "rooms:write"
    messages_read = "messages:read"
    messages_write = "messages:write"
    notifications_read = "notifications:read"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    kind: KeyKind
    key_id: str
    client_id: str = ""
    user_id: str | None = None
    scopes: frozenset[str] = ALL_SCOPES
    expires_at: datetime | None = None

    @property
    def is_master(self) -> bool:
        """A master key of its client."""
        return self.kind is KeyKind.master

    @property
    def is_user(self) -> bool:
        """A user key."""
        return self.kind is KeyKind.user
