# Generated from chatapi_client/_async by scripts/unasync.py: do not edit.
"""Tenant, users, auth, keys, rooms and messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from chatapi_client._sync.pagination import MessagePager, Pager
from chatapi_client._sync.transport import Transport
from chatapi_client.models import (
    ClientInfo,
    ConnectToken,
    CreatedClient,
    InboxItem,
    KeyInfo,
    Login,
    Member,
    Message,
    Preferences,
    Room,
    RotatedMasterKey,
    User,
)


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body without the fields left at None."""
    return {k: v for k, v in fields.items() if v is not None}


class Resource:
    """Base of the resources: holds the transport."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Clients(Resource):
    """`/clients`: the tenant itself (master key) and creation (admin key)."""

    def create(self, name: str, slug: str | None = None) -> CreatedClient:
        """A new tenant (admin key); its master key is shown only here."""
        data = self._t.json("POST", "/clients", json=body(name=name, slug=slug))
        return CreatedClient.model_validate(data)

    def me(self) -> ClientInfo:
        """The tenant and its settings."""
        return ClientInfo.model_validate(self._t.json("GET", "/clients/me"))

    def update(
        self, *, name: str | None = None, settings: dict[str, Any] | None = None
    ) -> ClientInfo:
        """Change the name or merge settings (`rate_limits`, `room_inactivity_seconds`, …)."""
        data = self._t.json("PATCH", "/clients/me", json=body(name=name, settings=settings))
        return ClientInfo.model_validate(data)

    def rotate_key(self, grace_seconds: int = 0) -> RotatedMasterKey:
        """A new master key; the others stop working after `grace_seconds`."""
        data = self._t.json(
            "POST", "/clients/me/rotate-key", json={"grace_seconds": grace_seconds}
        )
        return RotatedMasterKey.model_validate(data)


class Users(Resource):
    """`/users` (master key)."""

    def upsert(
        self,
        external_id: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> User:
        """Create the user, or update the one with this `external_id`."""
        payload = body(
            external_id=external_id, display_name=display_name, email=email, metadata=metadata
        )
        # An upsert by external_id: repeating it is harmless, so it may be retried.
        data = self._t.json("POST", "/users", json=payload, idempotent=True)
        return User.model_validate(data)

    def list(self, *, limit: int | None = None) -> Pager[User]:
        """Every user, page by page."""
        return Pager(self._t, "/users", User, {"limit": limit})

    def get(self, user_id: str) -> User:
        """One user."""
        return User.model_validate(self._t.json("GET", f"/users/{user_id}"))

    def update(self, user_id: str, **fields: Any) -> User:
        """Change `display_name`, `email`, `metadata`."""
        return User.model_validate(self._t.json("PATCH", f"/users/{user_id}", json=fields))

    def delete(self, user_id: str) -> None:
        """Delete the user, revoking its keys."""
        self._t.request("DELETE", f"/users/{user_id}")

    def notifications(self, user_id: str, *, limit: int | None = None) -> Pager[InboxItem]:
        """The user's inbox (support tooling)."""
        return Pager(self._t, f"/users/{user_id}/notifications", InboxItem, {"limit": limit})

    def preferences(self, user_id: str) -> Preferences:
        """The user's notification preferences."""
        data = self._t.json("GET", f"/users/{user_id}/preferences")
        return Preferences.model_validate(data)

    def replace_preferences(
        self, user_id: str, preferences: Preferences | dict[str, Any]
    ) -> Preferences:
        """Replace the user's preferences."""
        payload = preferences.model_dump() if isinstance(preferences, Preferences) else preferences
        data = self._t.json("PUT", f"/users/{user_id}/preferences", json=payload)
        return Preferences.model_validate(data)


class Auth(Resource):
    """`/auth`: user keys and socket connect tokens."""

    def login(
        self,
        *,
        user_id: str | None = None,
        external_id: str | None = None,
        scopes: Sequence[str] | None = None,
        ttl_seconds: int | None = None,
        device_id: str | None = None,
    ) -> Login:
        """A fresh user key for one device (master key); that device's earlier keys stop working."""
        payload = body(
            user_id=user_id,
            external_id=external_id,
            scopes=scopes,
            ttl_seconds=ttl_seconds,
            device_id=device_id,
        )
        return Login.model_validate(self._t.json("POST", "/auth/login", json=payload))

    def logout(self) -> None:
        """Revoke the presented user key."""
        self._t.request("POST", "/auth/logout")

    def connect_token(self, user_id: str | None = None) -> ConnectToken:
        """A short-lived, single-use token that opens one socket for the user."""
        data = self._t.json("POST", "/auth/connect-token", json=body(user_id=user_id))
        return ConnectToken.model_validate(data)

    def me(self) -> KeyInfo:
        """The presented key: kind, user, scopes, expiry."""
        return KeyInfo.model_validate(self._t.json("GET", "/auth/me"))


class Keys(Resource):
    """`/keys` (master key)."""

    def list(self, *, limit: int | None = None) -> Pager[KeyInfo]:
        """Every key of the tenant (never a secret)."""
        return Pager(self._t, "/keys", KeyInfo, {"limit": limit})

    def revoke(self, key_id: str) -> None:
        """Revoke a key."""
        self._t.request("DELETE", f"/keys/{key_id}")


class Rooms(Resource):
    """`/rooms`."""

    def create(
        self,
        *,
        name: str | None = None,
        type: str = "group",
        member_ids: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Room:
        """A new room (a `direct` room is unique per pair: the existing one comes back)."""
        payload = body(name=name, type=type, member_ids=member_ids, metadata=metadata)
        return Room.model_validate(self._t.json("POST", "/rooms", json=payload))

    def list(
        self, *, type: str | None = None, is_active: bool | None = None, limit: int | None = None
    ) -> Pager[Room]:
        """A user key's rooms (with `unread_count`), or every room for the master key."""
        return Pager(
            self._t, "/rooms", Room, {"type": type, "is_active": is_active, "limit": limit}
        )

    def list_all(
        self, *, type: str | None = None, is_active: bool | None = None, limit: int | None = None
    ) -> Pager[Room]:
        """Every room of the tenant (master key)."""
        params = {"type": type, "is_active": is_active, "limit": limit}
        return Pager(self._t, "/rooms/all", Room, params)

    def get(self, room_id: str) -> Room:
        """One room."""
        return Room.model_validate(self._t.json("GET", f"/rooms/{room_id}"))

    def update(self, room_id: str, **fields: Any) -> Room:
        """Change `name`, `metadata`."""
        return Room.model_validate(self._t.json("PATCH", f"/rooms/{room_id}", json=fields))

    def delete(self, room_id: str) -> None:
        """Delete the room."""
        self._t.request("DELETE", f"/rooms/{room_id}")

    def members(self, room_id: str, *, limit: int | None = None) -> Pager[Member]:
        """The room's members."""
        return Pager(self._t, f"/rooms/{room_id}/members", Member, {"limit": limit})

    def add_members(self, room_id: str, user_ids: Sequence[str]) -> Room:
        """Add users to the room."""
        data = self._t.json(
            "POST", f"/rooms/{room_id}/members", json={"user_ids": user_ids}, idempotent=True
        )
        return Room.model_validate(data)

    def remove_member(self, room_id: str, user_id: str) -> None:
        """Remove a user from the room."""
        self._t.request("DELETE", f"/rooms/{room_id}/members/{user_id}")

    def mark_read(self, room_id: str, seq: int) -> None:
        """Mark the room read up to `seq` (user key)."""
        self._t.request("POST", f"/rooms/{room_id}/read", json={"seq": seq}, idempotent=True)


class Messages(Resource):
    """`/rooms/{id}/messages`."""

    def send(
        self,
        room_id: str,
        content: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        client_message_id: str | None = None,
    ) -> Message:
        """Post a message. A `client_message_id` is made when not given, so a retry after a
        dropped connection answers the first message instead of posting a second one."""
        payload = body(
            content=content,
            content_type=content_type,
            metadata=metadata,
            client_message_id=client_message_id or uuid.uuid4().hex,
        )
        data = self._t.json(
            "POST", f"/rooms/{room_id}/messages", json=payload, idempotent=True
        )
        return Message.model_validate(data)

    def list(
        self,
        room_id: str,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> MessagePager:
        """Newest first, or oldest first after `after_seq` (catching up)."""
        params = {"before_seq": before_seq, "after_seq": after_seq, "limit": limit}
        return MessagePager(self._t, room_id, params)

    def update(self, room_id: str, message_id: str, **fields: Any) -> Message:
        """Edit `content`, `metadata` (sender or master)."""
        data = self._t.json("PATCH", f"/rooms/{room_id}/messages/{message_id}", json=fields)
        return Message.model_validate(data)

    def delete(self, room_id: str, message_id: str) -> Message:
        """Soft delete (idempotent)."""
        data = self._t.json("DELETE", f"/rooms/{room_id}/messages/{message_id}")
        return Message.model_validate(data)
