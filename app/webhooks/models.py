"""Outbound webhook endpoints of a client (the relay's `webhook` channel targets)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class WebhookEndpoint(SQLModel, table=True):
    """A URL the client receives signed events at.

    `event_types` is the subscription; an empty list means every event type.
    Secrets are stored sealed (encrypted with `SECRET_KEY` by app.core.crypto), never in
    clear. After a rotation the previous secret still signs until
    `previous_secret_expires_at`, so receivers can roll over without dropping events.
    `failing_since`/`failure_count` track an unbroken run of failed attempts; the service
    disables an endpoint that has failed for too long (`disabled_reason` says why).
    """

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_client_id_id", "client_id", "id"),)

    id: str = Field(primary_key=True, max_length=26)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret_sealed: str = Field(max_length=512)
    previous_secret_sealed: str | None = Field(default=None, max_length=512)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled: bool = False
    disabled_reason: str | None = Field(default=None, max_length=200)
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failure_count: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
