"""What each scope allows: the one table REST routes, socket client events and socket
delivery all go through, so a key can do the same things whichever way it talks.

- REST routes depend on `require_scope(scope)` (app/api/deps.py), which calls `require`.
- Socket client events: `CLIENT_EVENT_SCOPES` (mirrors the REST route doing the same thing).
- Server → client events: `delivery_scope(event)`; a connection receives an event only if
  its key holds that scope. Room subscriptions are made only for keys that may hear
  something in rooms (`follows_rooms`).

Master keys hold every scope; the admin key holds none of a client's.
"""

from __future__ import annotations

from functools import lru_cache

from app.auth.principal import KeyKind, Principal, Scope
from app.core.errors import Forbidden

ROOMS_READ = Scope.rooms_read.value
ROOMS_WRITE = Scope.rooms_write.value
MESSAGES_READ = Scope.messages_read.value
MESSAGES_WRITE = Scope.messages_write.value
NOTIFICATIONS_READ = Scope.notifications_read.value

# Client → server socket events and the scope each needs (None: any client key).
# Each mirrors its REST twin: `message.send` is POST /rooms/{id}/messages (messages:write),
# `sync` is GET /rooms/{id}/messages (messages:read), `read` is POST /rooms/{id}/read
# (messages:read). `typing` has no REST twin; it writes into a room's message stream.
# `subscribe`/`unsubscribe` are master-only, and masters hold every scope.
CLIENT_EVENT_SCOPES: dict[str, str | None] = {
    "ping": None,
    "message.send": MESSAGES_WRITE,
    "typing": MESSAGES_WRITE,
    "read": MESSAGES_READ,
    "sync": MESSAGES_READ,
    "subscribe": None,
    "unsubscribe": None,
}

# Server → client events by name prefix (exact names first) and the scope they need.
_DELIVERY_EXACT: dict[str, str | None] = {
    "connected": None,
    "typing": MESSAGES_READ,
    "read": MESSAGES_READ,
    "presence": ROOMS_READ,
    "notification": NOTIFICATIONS_READ,
}
_DELIVERY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("message.", MESSAGES_READ),
    ("room.", ROOMS_READ),
    ("notification.", NOTIFICATIONS_READ),
)
# Scopes that make room subscriptions worth having (anything delivered on room targets).
_ROOM_SCOPES = frozenset({ROOMS_READ, MESSAGES_READ})


def has_scope(principal: Principal, scope: str) -> bool:
    """Whether a client key holds `scope` (masters hold all; the admin key none)."""
    if principal.kind is KeyKind.admin:
        return False
    return principal.is_master or scope in principal.scopes


def require(principal: Principal, scope: str) -> None:
    """Raise Forbidden unless `principal` is a client key holding `scope`."""
    if principal.kind is KeyKind.admin:
        raise Forbidden("The admin key only manages clients")
    if not has_scope(principal, scope):
        raise Forbidden(f"This key lacks the `{scope}` scope")


def require_client_event(principal: Principal, event: str) -> None:
    """Raise Forbidden unless `principal` may send socket event `event` (unknown: allowed
    here, the handler answers 404)."""
    scope = CLIENT_EVENT_SCOPES.get(event)
    if scope is not None:
        require(principal, scope)


@lru_cache(maxsize=256)
def delivery_scope(event: str) -> str | None:
    """The scope a connection's key needs to receive server event `event` (None: any).

    Cached: it is computed once per event name, not once per delivered frame.
    """
    if event in _DELIVERY_EXACT:
        return _DELIVERY_EXACT[event]
    for prefix, scope in _DELIVERY_PREFIXES:
        if event.startswith(prefix):
            return scope
    return None


def may_receive(principal: Principal, scope: str | None) -> bool:
    """Whether a connection of `principal` gets an event needing `scope` (the fan-out check:
    one frozenset lookup per connection)."""
    return scope is None or scope in principal.scopes


def follows_rooms(principal: Principal) -> bool:
    """Whether a connection of this key is subscribed to its rooms: only if it may receive
    something delivered there (rooms:read or messages:read)."""
    return principal.is_master or not _ROOM_SCOPES.isdisjoint(principal.scopes)
