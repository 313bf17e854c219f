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
    # The device a user key was issued to (`default` when login named none); NULL for
    # master keys. Login rotates one device's keys only.
    device_id: str | None = Field(default=None, max_length=64)


class ConnectToken(SQLModel, table=True):
    """A single-use socket token: only the SHA-256 of the random token is stored.

    It carries what the key that minted it could do (kind, user, scopes) and names that key
    (`key_id`): the socket it opens lives and dies with that key (revocation closes it).
    """

    __tablename__ = "connect_tokens"
    __table_args__ = (Index("ix_connect_tokens_client_expires", "client_id", "expires_at"),)

    token_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(foreign_key="clients.id", ondelete="CASCADE", max_length=26)
    kind: str = Field(max_length=16)
    user_id: str | None = Field(default=None, max_length=26)
    key_id: str = Field(max_length=32)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
