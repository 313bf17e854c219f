"""Inbound webhooks: hooks external systems post to, the events they sent, room keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime

# Event processing states. `pending` (due at `next_attempt_at`) → `processing` (leased)
# → `processed` | `failed`; a transient error puts it back to `pending` with a later due time.
PENDING = "pending"
PROCESSING = "processing"
PROCESSED = "processed"
FAILED = "failed"

ACTIONS = ("notify", "message", "room", "forward")
SCHEMES = ("standard-webhooks", "github", "stripe", "hmac-sha256")


class InboundWebhook(SQLModel, table=True):
    """A URL an external system posts its events to: how to verify them and what to do.

    `config` is the action's configuration (and `template`); `signature` the scheme's
    options (header names, encoding, dedupe source, tolerance). Secrets are stored sealed
    (app.core.crypto); after a rotation the previous one is still accepted until
    `previous_secret_expires_at`.
    """

    __tablename__ = "inbound_webhooks"
    __table_args__ = (UniqueConstraint("client_id", "name"),)

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    name: str = Field(max_length=64)
    action: str = Field(max_length=16)
    scheme: str = Field(max_length=32)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    signature: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secret_sealed: str = Field(max_length=512)
    previous_secret_sealed: str | None = Field(default=None, max_length=512)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class InboundEvent(SQLModel, table=True):
    """One verified request of a hook: stored before the 202, processed by a task.

    `dedupe_key` is unique per hook (NULL: the sender gave none, so no deduplication —
    both databases treat NULLs as distinct). Claiming follows the relay's deliveries:
    `lease_until` fences a worker's attempt, `attempts` counts them.
    """

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("hook_id", "dedupe_key"),
        Index("ix_inbound_events_client_hook_id", "client_id", "hook_id", "id"),
        # The sweep's paths: due pending events, and processing ones whose lease ran out.
        Index("ix_inbound_events_due", "status", "next_attempt_at"),
        Index("ix_inbound_events_lease", "status", "lease_until"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    hook_id: str = Field(foreign_key="inbound_webhooks.id", ondelete="CASCADE", max_length=26)
    dedupe_key: str | None = Field(default=None, max_length=255)
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The raw bytes as received (signatures are over bytes; the body need not be UTF-8).
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = 0
    # Bumped by each replay: the actions' idempotency keys include it, so a replay acts anew
    # while a retry of the same generation never acts twice.
    generation: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=2000)
    outcome: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    received_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class InboundRoomKey(SQLModel, table=True):
    """The room reserved for an external key of a hook (e.g. one support room per ticket).

    The room id is chosen when the key is first seen and inserted under the primary key, so
    concurrent events for one key agree on one room id before any room exists; the room is
    then created with that id (a second creator hits the room's primary key and reuses it).
    No foreign key on `room_id`: the row exists before its room does. A deleted room's key
    gets a fresh id (a compare-and-set on the old one).
    """

    __tablename__ = "inbound_room_keys"

    client_id: str = Field(
        foreign_key="clients.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    hook_id: str = Field(
        foreign_key="inbound_webhooks.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    key: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=26)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class InboundContentMark(SQLModel, table=True):
    """The event a hook stored for one signed content (SHA-256 hex `digest`), and until when
    a request with the same content is its duplicate (`signature.content_dedupe_seconds`).

    For schemes whose delivery id is not signed (github, hmac-sha256): a captured request
    replayed under a new id has the same signed content. The primary key makes the claim
    atomic: an upsert takes a mark only when it is new or expired. The mark goes with its
    event (and hook).
    """

    __tablename__ = "inbound_content_marks"

    hook_id: str = Field(
        foreign_key="inbound_webhooks.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    digest: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    event_id: str = Field(
        foreign_key="inbound_events.id", ondelete="CASCADE", index=True, max_length=26
    )
    expires_at: datetime = Field(sa_type=UTCDateTime)
