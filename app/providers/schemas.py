"""Request and response shapes of `/providers` and `/routing/{channel}`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.providers.models import Provider, ProviderRoute

# `smtp-main`, `mailgun_eu`: what routing names a provider by, and what `served_by` shows.
ProviderName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
# Providers one chain may name (a failover chain longer than this is a mistake).
MAX_CHAIN = 10


class ProviderCreate(BaseModel):
    """`POST /providers`: `settings` are the type's (docs/providers.md); its secret ones are
    sealed at rest and never returned."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "smtp-main",
                    "type": "smtp",
                    "settings": {
                        "host": "smtp.example.com",
                        "port": 587,
                        "username": "apikey",
                        "password": "…",
                        "security": "starttls",
                        "from_email": "noreply@example.com",
                    },
                    "enabled": True,
                }
            ]
        },
    )

    name: ProviderName
    type: str = Field(min_length=1, max_length=32, description="An installed provider type.")
    settings: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class ProviderPatch(BaseModel):
    """`PATCH /providers/{id}`: `settings` are merged into the stored ones (a secret left out
    keeps its value; `null` clears an optional setting)."""

    model_config = ConfigDict(extra="forbid")

    name: ProviderName | None = None
    settings: dict[str, Any] | None = None
    enabled: bool | None = None


class ProviderOut(BaseModel):
    """A provider as the API shows it: its non-secret settings, and the names of the secret
    ones that are set (never their values)."""

    id: str
    name: str
    type: str
    channel: str
    enabled: bool
    settings: dict[str, Any]
    secret_fields: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Provider) -> ProviderOut:
        """From the row (its sealed secrets are only named)."""
        return cls(
            id=row.id,
            name=row.name,
            type=row.type,
            channel=row.channel,
            enabled=row.enabled,
            settings=dict(row.settings),
            secret_fields=sorted(row.secrets_sealed),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ProviderPage(BaseModel):
    """A page of providers."""

    data: list[ProviderOut]
    has_more: bool
    next_cursor: str | None


class ProviderTest(BaseModel):
    """`POST /providers/{id}/test`: `to` receives a test message where the channel has
    addresses; without it the account's credentials and connection are checked."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(default=None, min_length=1, max_length=320)


class ProviderTestResult(BaseModel):
    """The check went through: what was done."""

    ok: bool
    detail: str


class BulkRoute(BaseModel):
    """The chain for sends with at least `min_recipients` recipients on the channel."""

    model_config = ConfigDict(extra="forbid")

    min_recipients: int = Field(ge=1, le=10_000_000)
    providers: list[ProviderName] = Field(min_length=1, max_length=MAX_CHAIN)


class RoutingPut(BaseModel):
    """`PUT /routing/{channel}`: the failover chain (provider names, first tried first) and
    the optional bulk chain."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "providers": ["smtp-main", "mailgun"],
                    "bulk": {"min_recipients": 500, "providers": ["mailgun"]},
                }
            ]
        },
    )

    providers: list[ProviderName] = Field(max_length=MAX_CHAIN)
    bulk: BulkRoute | None = None


class RoutingOut(BaseModel):
    """A channel's routing; `default` is true when the tenant has not set one (the chain is
    then its enabled providers of the channel, `smtp` and `smtp-fallback` first)."""

    channel: str
    providers: list[str]
    bulk: BulkRoute | None
    default: bool
    updated_at: datetime | None

    @classmethod
    def of(cls, row: ProviderRoute) -> RoutingOut:
        """From a stored route."""
        bulk = None
        if row.bulk_min_recipients is not None and row.bulk_providers:
            bulk = BulkRoute(min_recipients=row.bulk_min_recipients, providers=row.bulk_providers)
        return cls(
            channel=row.channel,
            providers=list(row.providers),
            bulk=bulk,
            default=False,
            updated_at=row.updated_at,
        )
