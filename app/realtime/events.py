"""Real-time event names both ways (API.md §5) and the targets events are addressed to."""

from __future__ import annotations

CONNECTED = "connected"  # first event of every connection: its subscriptions are live
MESSAGE_CREATED = "message.created"
MESSAGE_UPDATED = "message.updated"
MESSAGE_DELETED = "message.deleted"
ROOM_MEMBER_JOINED = "room.member_joined"
ROOM_MEMBER_LEFT = "room.member_left"
ROOM_DEACTIVATED = "room.deactivated"
ROOM_REACTIVATED = "room.reactivated"
TYPING = "typing"
READ = "read"
PRESENCE = "presence"
NOTIFICATION = "notification"
# A user's inbox counts after a change of state (API.md §6b).
NOTIFICATION_COUNT = "notification.count"
# Operational events of the relay, for the tenant's master-key sockets (API.md §5, §6).
DELIVERY_EXHAUSTED = "delivery.exhausted"
ENDPOINT_DISABLED = "endpoint.disabled"

# Client → server events both transports accept (app/realtime/client_events.py).
CLIENT_EVENTS = ("message.send", "typing", "read", "sync", "ping", "subscribe", "unsubscribe")


def room_target(room_id: str) -> str:
    """The target every member connection of a room listens on."""
    return f"room:{room_id}"


def user_target(user_id: str) -> str:
    """The target every connection of one user listens on."""
    return f"user:{user_id}"


def client_target() -> str:
    """The tenant-wide target master-key connections listen on (operational events)."""
    return "client:ops"
