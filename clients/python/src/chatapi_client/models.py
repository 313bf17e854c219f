"""The server's objects as pydantic models (API.md, docs/api.md). Hand-written, not generated:
every model accepts fields it does not name (`extra="allow"`), so a newer server never breaks
an older client, and the names read like the documentation rather than a generator's."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Model(BaseModel):
    """Base: unknown fields are kept (`model_extra`), field names as the API spells them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Page(Model, Generic[T]):
    """One cursor page: `{"data", "has_more", "next_cursor"}`."""

    data: list[T]
    has_more: bool = False
    next_cursor: str | None = None


class ClientInfo(Model):
    """The tenant (`GET /clients/me`)."""

    id: str
    name: str
    slug: str
    settings: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class CreatedClient(Model):
    """`POST /clients`: the master key is shown only here."""

    id: str
    name: str
    slug: str
    master_key: str


class RotatedMasterKey(Model):
    """`POST /clients/me/rotate-key`."""

    master_key: str
    old_keys_expire_at: datetime | None = None


class User(Model):
    """A user of the tenant."""

    id: str
    external_id: str | None = None
    display_name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Login(Model):
    """`POST /auth/login`: a fresh user key (shown once)."""

    api_key: str
    user: User
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    device_id: str | None = None


class ConnectToken(Model):
    """`POST /auth/connect-token`: opens one socket, once, before `expires_at`."""

    token: str
    expires_at: datetime | None = None


class KeyInfo(Model):
    """A key as `GET /keys` and `GET /auth/me` show it (never the secret)."""

    id: str | None = None
    kind: str
    user_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class Room(Model):
    """A room."""

    id: str
    name: str | None = None
    type: str
    is_active: bool = True
    last_activity_at: datetime | None = None
    deactivated_at: datetime | None = None
    member_ids: list[str] | None = None
    member_count: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    last_seq: int | None = None
    unread_count: int | None = None


class Member(Model):
    """A room membership."""

    user_id: str
    role: str | None = None
    joined_at: datetime | None = None
    read_seq: int | None = None


class Message(Model):
    """A message; `seq` is 1, 2, 3 … per room."""

    id: str
    room_id: str
    seq: int
    sender_id: str | None = None
    content: str
    content_type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    client_message_id: str | None = None
    created_at: datetime | None = None
    edited_at: datetime | None = None
    deleted_at: datetime | None = None


class MessagePage(Model):
    """`GET /rooms/{id}/messages`: paged by `seq`, not by cursor."""

    data: list[Message]
    has_more: bool = False


class Delivery(Model):
    """One (channel, recipient) of a notification."""

    id: str
    channel: str
    recipient: Any = None
    status: str
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None


class Notification(Model):
    """A notification and (from send and get) its deliveries."""

    id: str
    status: str
    channels: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    deliveries: list[Delivery] = Field(default_factory=list)
    delivery_counts: dict[str, int] | None = None


class Attempt(Model):
    """One delivery attempt."""

    channel: str | None = None
    recipient: Any = None
    outcome: str | None = None
    response_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None


class WebhookEndpoint(Model):
    """An outbound webhook endpoint; `secret` only in the answers of create and rotate."""

    id: str
    url: str
    description: str | None = None
    event_types: list[str] | None = None
    disabled: bool = False
    disabled_reason: str | None = None
    secret: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class EmailConfig(Model):
    """The tenant's SMTP configuration (never the password: `password_set`)."""

    host: str
    port: int
    username: str | None = None
    security: str | None = None
    from_email: str | None = None
    from_name: str | None = None
    password_set: bool | None = None
    fallback: dict[str, Any] | None = None


class EmailTestResult(Model):
    """`POST /email-config/test`."""

    ok: bool
    code: int | None = None
    reply: str | None = None
    served_by: str | None = None
    error: str | None = None
    duration_ms: float | None = None


class InboxItem(Model):
    """An in-app notification of the user's inbox."""

    id: str
    notification_id: str | None = None
    event: str | None = None
    data: Any = None
    read_at: datetime | None = None
    seen_at: datetime | None = None
    archived_at: datetime | None = None
    created_at: datetime | None = None


class InboxCount(Model):
    """`{"unread","unseen","total"}`; bulk changes add `updated`."""

    unread: int
    unseen: int
    total: int
    updated: int | None = None


class Preferences(Model):
    """`{"channels": {"email": false}, "events": {"order.shipped": {"email": true}}}`."""

    channels: dict[str, bool] = Field(default_factory=dict)
    events: dict[str, dict[str, bool]] = Field(default_factory=dict)


class InboundHook(Model):
    """An inbound webhook; `secret` only in the answers of create and rotate."""

    id: str
    name: str
    action: str | None = None
    url: str | None = None
    path: str | None = None
    scheme: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    disabled: bool = False
    secret: str | None = None


class InboundEvent(Model):
    """An event an inbound hook received, with its processing outcome."""

    id: str
    status: str | None = None
