"""The provider tables: tenants' provider accounts, their routing per channel, suppressed
addresses, the delivery events providers reported, and users' push subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class Provider(SQLModel, table=True):
    """One configured account of a delivery service (`type`: smtp, mailgun, twilio, ...).

    `settings` holds the type's non-secret settings; `secrets_sealed` its secret ones, each
    sealed with SECRET_KEY (app/core/crypto.py), never returned.
    """

    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("client_id", "name", name="uq_providers_client_name"),)

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    name: str = Field(max_length=64)
    type: str = Field(max_length=32)
    channel: str = Field(max_length=32)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secrets_sealed: dict[str, str] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    enabled: bool = True
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class ProviderRoute(SQLModel, table=True):
    """A tenant's routing for one channel: the failover chain (provider names, in order) and
    the bulk chain used by sends with at least `bulk_min_recipients` on the channel."""

    __tablename__ = "provider_routes"

    client_id: str = Field(
        foreign_key="clients.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    channel: str = Field(primary_key=True, max_length=32)
    providers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    bulk_min_recipients: int | None = None
    bulk_providers: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class Suppression(SQLModel, table=True):
    """An address later sends skip: it hard-bounced or complained (or was added by hand).
    `address` is stored lower-cased for e-mail."""

    __tablename__ = "suppressions"

    client_id: str = Field(
        foreign_key="clients.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    address: str = Field(primary_key=True, max_length=320)
    channel: str = Field(default="email", max_length=32)
    reason: str = Field(max_length=32)  # hard_bounce | complaint | undeliverable
    detail: str | None = Field(default=None, max_length=1000)
    provider: str | None = Field(default=None, max_length=64)
    delivery_id: str | None = Field(default=None, max_length=26)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class ProviderEventRecord(SQLModel, table=True):
    """One verified delivery event a provider reported; (`provider_id`, `event_id`) is
    unique, so a provider's retries of one event are stored once."""

    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("provider_id", "event_id", name="uq_provider_events_event"),
        Index("ix_provider_events_client_received", "client_id", "received_at"),
        Index("ix_provider_events_delivery", "delivery_id"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    provider_id: str = Field(foreign_key="providers.id", ondelete="CASCADE", max_length=26)
    event_id: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    delivery_id: str | None = Field(default=None, max_length=26)
    address: str | None = Field(default=None, max_length=320)
    permanent: bool = False
    detail: str | None = Field(default=None, max_length=1000)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class PushSubscription(SQLModel, table=True):
    """A user's push target: a Web Push subscription (the browser's `PushSubscription` JSON:
    `endpoint` and `keys.p256dh`/`keys.auth`) or an FCM registration token (`kind` fcm, the
    token in `endpoint`). Removed when the push service answers 404/410."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (
        UniqueConstraint("user_id", "endpoint_hash", name="uq_push_subscriptions_user_endpoint"),
        Index("ix_push_subscriptions_client_user", "client_id", "user_id"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", max_length=26)
    kind: str = Field(max_length=16)  # webpush | fcm
    endpoint: str = Field(max_length=2048)
    # SHA-256 of `endpoint` (hex): endpoints are too long for a portable unique index.
    endpoint_hash: str = Field(max_length=64)
    keys: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    user_agent: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
