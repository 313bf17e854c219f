"""Request and response shapes of `/auth` and `/keys`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.principal import Scope
from app.users.schemas import UserOut

MAX_TTL_SECONDS = 365 * 86_400
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class LoginRequest(BaseModel):
    """`POST /auth/login`: one of `user_id` or `external_id`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"external_id": "crm-42", "scopes": ["rooms:read", "messages:write"]},
                {"user_id": "01JD6Z3Q8W9X0Y1Z2A3B4C5D6E", "ttl_seconds": 86400},
            ],
            # The rule `_one_identity` enforces, stated in the schema: exactly one of the
            # two is given as a string (null counts as absent).
            "oneOf": [
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                {"required": ["external_id"], "properties": {"external_id": {"type": "string"}}},
            ],
        },
    )

    user_id: str | None = Field(default=None, max_length=26)
    external_id: str | None = Field(default=None, max_length=200)
    scopes: list[Scope] | None = Field(default=None, min_length=1)
    ttl_seconds: int | None = Field(default=None, strict=True, ge=1, le=MAX_TTL_SECONDS)
    device_id: str | None = Field(
        default=None,
        pattern=DEVICE_ID_PATTERN,
        description="The device (browser, app install) the key is for: login rotates this "
        "device's key only. Absent: the device `default`.",
    )

    @model_validator(mode="after")
    def _one_identity(self) -> LoginRequest:
        if (self.user_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of user_id or external_id")
        return self


class LoginResponse(BaseModel):
    """The new user key (shown once); every earlier key of the user on that device stopped
    working."""

    api_key: str
    user: UserOut
    scopes: list[str]
    expires_at: datetime | None
    device_id: str


class ConnectTokenRequest(BaseModel):
    """`POST /auth/connect-token`: a master key names the user; a user key mints for itself."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, max_length=26)


class ConnectTokenOut(BaseModel):
    """A single-use token that only opens a socket, until `expires_at`."""

    token: str
    expires_at: datetime


class KeyOut(BaseModel):
    """A key as listed: never its secret or hash."""

    id: str
    kind: str
    user_id: str | None
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    device_id: str | None


class KeyPage(BaseModel):
    """A page of keys."""

    data: list[KeyOut]
    has_more: bool
    next_cursor: str | None


class WhoAmI(BaseModel):
    """`GET /auth/me`: what the presented key is."""

    key_id: str
    kind: str
    client_id: str
    user_id: str | None
    scopes: list[str]
    expires_at: datetime | None
