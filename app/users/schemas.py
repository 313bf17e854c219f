"""Request and response shapes of `/users`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.core.bounds import Metadata
from app.core.phone import E164
from app.users.models import User


class UserUpsert(BaseModel):
    """`POST /users`: creates the user, or updates the one with this `external_id`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_id": "crm-42",
                    "display_name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "phone": "+14155550100",
                    "metadata": {"plan": "pro"},
                }
            ]
        },
    )

    external_id: str = Field(min_length=1, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    phone: E164 | None = None
    """E.164 (`+14155550100`): where the `sms` channel delivers."""
    metadata: Metadata | None = None


class UserPatch(BaseModel):
    """`PATCH /users/{id}`."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    phone: E164 | None = None
    """E.164 (`+14155550100`); `null` removes it."""
    metadata: Metadata | None = None


class UserOut(BaseModel):
    """A user as the API shows it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z4A1B2C3D4E5F6G7H8J9K",
                    "external_id": "customer-42",
                    "display_name": "Ada",
                    "email": "ada@example.com",
                    "phone": "+14155550100",
                    "metadata": {"plan": "pro"},
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                }
            ]
        }
    )

    id: str
    external_id: str
    display_name: str | None
    email: str | None
    phone: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        """From the row."""
        return cls(
            id=user.id,
            external_id=user.external_id,
            display_name=user.display_name,
            email=user.email,
            phone=user.phone,
            metadata=user.metadata_,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserPage(BaseModel):
    """A page of users."""

    data: list[UserOut]
    has_more: bool
    next_cursor: str | None
