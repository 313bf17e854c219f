"""Request and response shapes of `/webhook-endpoints`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.webhooks.models import WebhookEndpoint

# A rotation's old secret keeps signing at most this long (receivers roll over within a week).
MAX_GRACE_SECONDS = 7 * 86_400
DEFAULT_GRACE_SECONDS = 86_400
MAX_EVENT_TYPES = 100

# `order.shipped`, `endpoint.disabled`, `invoice:paid`…: no spaces or control characters.
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:*/-]+$")
]


def _check_url(value: str) -> str:
    if any(ord(c) < 0x21 or c == "\x7f" for c in value):
        raise ValueError("a webhook URL must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class EndpointCreate(BaseModel):
    """`POST /webhook-endpoints`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/chatapi",
                    "description": "Order events",
                    "event_types": ["order.shipped", "endpoint.disabled"],
                }
            ]
        },
    )

    url: str = Field(min_length=1, max_length=2048, description="http(s) URL receiving events.")
    description: str | None = Field(default=None, max_length=500)
    event_types: list[EventType] = Field(
        default_factory=list,
        max_length=MAX_EVENT_TYPES,
        description="Event types it receives; empty: every type.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class EndpointPatch(BaseModel):
    """`PATCH /webhook-endpoints/{id}`: `disabled: false` re-enables and clears failure state."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[EventType] | None = Field(default=None, max_length=MAX_EVENT_TYPES)
    disabled: bool | None = Field(default=None, strict=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _dedupe(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))


class RotateSecret(BaseModel):
    """`POST /webhook-endpoints/{id}/rotate-secret`."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(
        default=DEFAULT_GRACE_SECONDS,
        strict=True,  # `true` is not a number of seconds
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the old secret keeps signing too (0: stops at once).",
    )


class EndpointOut(BaseModel):
    """An endpoint as the API shows it: never its secret."""

    id: str
    url: str
    description: str | None
    event_types: list[str]
    disabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    failure_count: int
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret before the last rotation still signs too."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, now: datetime) -> EndpointOut:
        """From the row (an expired previous secret is not mentioned)."""
        expires = endpoint.previous_secret_expires_at
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            disabled=endpoint.disabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.failing_since,
            failure_count=endpoint.failure_count,
            previous_secret_expires_at=expires if expires is not None and expires > now else None,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class EndpointWithSecret(EndpointOut):
    """The answer of creation and rotation: the only ones carrying the secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z8F6G7H8J9K0M1N2P3Q4R",
                    "url": "https://example.com/hooks/chatapi",
                    "description": "Order events",
                    "event_types": ["order.shipped", "endpoint.disabled"],
                    "disabled": False,
                    "disabled_reason": None,
                    "failing_since": None,
                    "failure_count": 0,
                    "previous_secret_expires_at": None,
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        }
    )

    secret: str = Field(description="`whsec_…`: shown once; store it to verify signatures.")


class EndpointPage(BaseModel):
    """A page of endpoints."""

    data: list[EndpointOut]
    has_more: bool
    next_cursor: str | None
