"""API keys: a public key id to find the row, and only a bcrypt hash of the secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class ApiKey(SQLModel, table=True):
    """A master key (whole client) or a user key (one user, some scopes)."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_client_user", "client_id", "user_id"),)

    id: str = Field(primary_key=True, max_length=32)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    kind: str = Field(max_length=16)
    user_id: str | None = Field(default=None, max_length=26)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    secret_hash: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
