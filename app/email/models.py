"""A client's SMTP configuration (the relay's `email` channel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class EmailConfig(SQLModel, table=True):
    """One row per client: its SMTP server and sender.

    `security` is `none`, `starttls` or `tls`. The password is stored sealed (encrypted
    with `SECRET_KEY` by app.core.crypto) and never returned. `fallback` is the same
    fields as a JSON object (`host`, `port`, `username`, `password_sealed`, `security`,
    `from_email`, `from_name`), used when the primary refuses, times out or answers 4xx.
    """

    __tablename__ = "email_configs"

    client_id: str = Field(
        foreign_key="clients.id", ondelete="CASCADE", primary_key=True, max_length=26
    )
    host: str = Field(max_length=255)
    port: int
    username: str | None = Field(default=None, max_length=320)
    password_sealed: str | None = Field(default=None, max_length=1024)
    security: str = Field(default="starttls", max_length=16)
    from_email: str = Field(max_length=320)
    from_name: str | None = Field(default=None, max_length=200)
    fallback: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
