"""The relay's rows: notifications, their deliveries, each delivery's attempts, idempotency.

A notification is what a client asked to send; a delivery is one (channel, recipient)
of it and the unit of work a task claims; an attempt is one try of a delivery, kept for
`GET /notifications/{id}/attempts` and purged after the retention period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from app.channels.names import IN_APP
from app.core.clock import utcnow
from app.core.types import UTCDateTime

# Delivery statuses. An in-app (websocket) delivery is `delivered` once its inbox item is
# stored; whether live connections have had it is `pushed_at` (NULL: a push is owed).
PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
RETRYING = "retrying"
FAILED = "failed"
CANCELED = "canceled"
SKIPPED = "skipped"
# After `delivered` (accepted by a provider), from the provider's delivery events
# (app/providers/events.py): the address hard-bounced, or its owner marked it as spam.
BOUNCED = "bounced"
COMPLAINED = "complained"
DELIVERY_STATUSES = (
    PENDING, SENDING, DELIVERED, RETRYING, FAILED, CANCELED, SKIPPED, BOUNCED, COMPLAINED
)  # fmt: skip
# Statuses a delivery can still leave on its own (work is owed).
ACTIVE_STATUSES = (PENDING, SENDING, RETRYING)
# The in-app channel: delivered when stored, pushed to live connections separately.
WEBSOCKET = IN_APP
# The rows whose push to live connections is owed (the partial indexes' predicate).
PUSH_OWED = f"channel = '{IN_APP}' AND status = 'delivered' AND pushed_at IS NULL"
# The longest attempt reply kept (an SMTP reply or a webhook response body), in bytes.
MAX_REPLY_BYTES = 4096


class Notification(SQLModel, table=True):
    """One send request of a client.

    `channels` is the requested channel list; `content` holds each channel's part
    (`{"websocket": {...}, "email": {...}, "webhook": {...}}`), once: deliveries and inbox
    items read it from here (an item shows `content.websocket.data`). `status` is derived
    from the deliveries (see `repository.derive_status`) and stored so listings can
    filter on it. `idempotency_key`/`request_hash` are kept for display and audit;
    uniqueness of a key lives in `IdempotencyRecord`.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        # Listing: newest first by id within a client (cursor = id).
        Index("ix_notifications_client_id_id", "client_id", "id"),
        # created_after / created_before filters.
        Index("ix_notifications_client_created", "client_id", "created_at"),
        # Analytics: a period's notifications by status, counted on the index alone.
        Index("ix_notifications_analytics", "client_id", "created_at", "status"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    status: str = Field(default=PENDING, max_length=16)
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    critical: bool = False
    send_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)


class Delivery(SQLModel, table=True):
    """One (channel, recipient) of a notification: the row a delivery task claims.

    `recipient` is the resolved recipient as shown to clients (`user_id`, `email`,
    `endpoint_id` …); `recipient_user_id` and `endpoint_id` repeat the parts queries
    need. `endpoint_id` has no foreign key: an endpoint's deletion must not erase the
    history of what was sent to it. `lease_until` is set while a worker holds the row
    (`sending`); an expired lease means the worker died and the row may be re-claimed.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        # The beat sweep: due pending/retrying rows, oldest first.
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # The beat sweep: 'sending' rows whose lease expired.
        Index("ix_deliveries_lease", "status", "lease_until"),
        # A notification's deliveries; its per-status counts; the channel filter.
        Index("ix_deliveries_notification", "notification_id", "channel", "status"),
        # A user's in-app deliveries still to push (pushed on connect, oldest first);
        # partial: only owed pushes, so it stays small while users are online.
        Index(
            "ix_deliveries_push_owed",
            "client_id",
            "recipient_user_id",
            "id",
            postgresql_where=text(PUSH_OWED),
            sqlite_where=text(PUSH_OWED),
        ),
        # The push sweep: owed pushes by when they became owed (the fast path's backstop).
        Index(
            "ix_deliveries_push_sweep",
            "delivered_at",
            postgresql_where=text(PUSH_OWED),
            sqlite_where=text(PUSH_OWED),
        ),
        # Analytics: a period's deliveries by channel and status, on the index alone.
        Index("ix_deliveries_analytics", "client_id", "created_at", "channel", "status"),
        # Analytics: delivery latency of a period's delivered rows (partial: delivered only).
        Index(
            "ix_deliveries_latency",
            "client_id",
            "created_at",
            "delivered_at",
            postgresql_where=text("status = 'delivered'"),
            sqlite_where=text("status = 'delivered'"),
        ),
        # The analytics rollup job: the hours whose deliveries changed since its last run.
        Index("ix_deliveries_updated", "updated_at"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(max_length=26)
    notification_id: str = Field(foreign_key="notifications.id", ondelete="CASCADE", max_length=26)
    channel: str = Field(max_length=16)
    recipient: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    recipient_user_id: str | None = Field(default=None, max_length=26)
    endpoint_id: str | None = Field(default=None, max_length=26)
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # In-app only: when the `notification` event went to live connections (or the push was
    # given up: the inbox keeps the item); NULL on a delivered in-app row = push owed.
    pushed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    skip_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)


class DeliveryAttempt(SQLModel, table=True):
    """One try of a delivery: outcome, response code or SMTP reply (≤ 4 KB), duration.

    `served_by` names the provider that answered (channels sent through providers).
    Rows are immutable and purged by `attempted_at` after the retention period.
    """

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index("ix_delivery_attempts_delivery", "delivery_id", "attempted_at"),
        # A notification's attempts in order (cursor = id).
        Index("ix_delivery_attempts_notification", "notification_id", "id"),
        # Retention purge: oldest first.
        Index("ix_delivery_attempts_attempted_at", "attempted_at"),
        # Per-provider figures of /analytics/summary (covering: no table rows read).
        Index("ix_delivery_attempts_provider", "client_id", "attempted_at", "served_by", "outcome"),
    )

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(max_length=26)
    delivery_id: str = Field(foreign_key="deliveries.id", ondelete="CASCADE", max_length=26)
    notification_id: str = Field(max_length=26)
    attempted_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    outcome: str = Field(max_length=16)
    response_code: int | None = None
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    served_by: str | None = Field(default=None, max_length=200)


class IdempotencyRecord(SQLModel, table=True):
    """A client's idempotency key → the notification it created, until `expires_at`.

    Kept apart from `notifications` (rather than a unique key column there) because a
    key lives 24 h while a notification lives longer: an expired record is replaced in
    place by the next send with the same key (one upsert), records are purged on their
    own schedule by `expires_at`, and the primary key (client_id, key) is the lookup.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_expires_at", "expires_at"),)

    client_id: str = Field(
        foreign_key="clients.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    notification_id: str = Field(foreign_key="notifications.id", ondelete="CASCADE", max_length=26)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    expires_at: datetime = Field(sa_type=UTCDateTime)
