"""A client (tenant): the owner of every other row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.types import UTCDateTime


class Client(SQLModel, table=True):
    """A tenant with its own users, rooms, keys and settings."""

    __tablename__ = "clients"

    id: str = Field(primary_key=True, max_length=26)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=64, unique=True)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, default_factory=utcnow)
