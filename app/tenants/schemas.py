"""Request and response shapes of the clients endpoints."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

DAY = 86_400
#: Bounds of a room type's inactivity threshold: a second (demos, tests) to ten years.
#: The upper bound keeps `now - threshold` a valid date for every database and the sweep.
MIN_ROOM_INACTIVITY_SECONDS = 1
MAX_ROOM_INACTIVITY_SECONDS = 10 * 365 * DAY
InactivitySeconds = Annotated[
    int, Field(strict=True, ge=MIN_ROOM_INACTIVITY_SECONDS, le=MAX_ROOM_INACTIVITY_SECONDS)
]


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no database or encoder can hold a lone surrogate.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


ClientName = Annotated[str, AfterValidator(_storable), Field(min_length=1, max_length=200)]


class RoomType(str, Enum):
    """The four room types; each has its own inactivity threshold."""

    support = "support"
    group = "group"
    direct = "direct"
    channel = "channel"


DEFAULT_ROOM_INACTIVITY_SECONDS: dict[str, int] = {
    RoomType.support.value: 7 * DAY,
    RoomType.group.value: 30 * DAY,
    RoomType.direct.value: 90 * DAY,
    RoomType.channel.value: 180 * DAY,
}


class ClientRateLimits(BaseModel):
    """A client's rate limits and channel quotas (API.md §8); an omitted value follows the
    deployment default (RATE_LIMIT_* settings), and answers show the effective values.

    A client sets each at most to its cap (`rate_limit_caps`: RATE_LIMIT_MAX_*, or what the
    operator granted it); the bounds below are what the admin key may set."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, strict=True, ge=1, le=1_000_000)
    """API requests per minute per key."""
    client_requests_per_minute: int | None = Field(default=None, strict=True, ge=1, le=10_000_000)
    """API requests per minute of all the client's keys together."""
    emails_per_hour: int | None = Field(default=None, strict=True, ge=1, le=10_000_000)
    """E-mail deliveries per hour; more wait for the next hour (deferred, not failed)."""
    sms_per_hour: int | None = Field(default=None, strict=True, ge=1, le=10_000_000)
    """SMS deliveries per hour; more wait for the next hour (deferred, not failed)."""
    webhooks_per_second_per_endpoint: int | None = Field(
        default=None, strict=True, ge=1, le=100_000
    )
    """Webhook deliveries per second per endpoint; more wait for the next second."""


class ClientSettings(BaseModel):
    """A client's settings; omitted values take the service defaults."""

    model_config = ConfigDict(extra="forbid")

    room_inactivity_seconds: dict[RoomType, InactivitySeconds] = Field(
        default_factory=lambda: {RoomType(k): v for k, v in DEFAULT_ROOM_INACTIVITY_SECONDS.items()}
    )
    max_room_members: int = Field(default=1000, ge=2, le=100_000)
    rate_limits: ClientRateLimits = Field(default_factory=ClientRateLimits)
    # Read-only for the client: the most it may set each rate limit to.
    rate_limit_caps: ClientRateLimits = Field(default_factory=ClientRateLimits)


class ClientCreate(BaseModel):
    """`POST /clients`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Acme Shop"}]})

    name: ClientName
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")


class ClientCreated(BaseModel):
    """The new client with its master key (shown this once)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z3Q8W9X0Y1Z2A3B4C5D6E",
                    "name": "Acme Shop",
                    "slug": "acme-shop",
                    "master_key": "ck_01JD6Z3Q9A1B2C3D4E5F6G7H8J_Zq3…",
                }
            ]
        }
    )

    id: str
    name: str
    slug: str
    master_key: str


class ClientOut(BaseModel):
    """`GET /clients/me`."""

    id: str
    name: str
    slug: str
    settings: ClientSettings
    created_at: datetime


class ClientSettingsPatch(BaseModel):
    """The settings a PATCH changes, in the shape `GET /clients/me` answers them; omitted ones
    stay as they are. `rate_limit_caps` is read-only (the operator's)."""

    model_config = ConfigDict(extra="forbid")

    room_inactivity_seconds: dict[RoomType, InactivitySeconds] | None = None
    max_room_members: int | None = Field(default=None, strict=True, ge=2, le=100_000)
    rate_limits: ClientRateLimits | None = None

    @model_validator(mode="before")
    @classmethod
    def _caps_are_read_only(cls, data: Any) -> Any:
        # Said plainly rather than "extra inputs are not permitted": a client sending back
        # what GET answered meets this one.
        if isinstance(data, dict) and "rate_limit_caps" in data:
            raise PydanticCustomError(
                "read_only",
                "rate_limit_caps is read-only: leave it out (the operator sets a client's caps "
                "with PATCH /clients/{id})",
            )
        return data


# In the OpenAPI document only (pydantic's own `deprecated=` would warn on every read).
_DEPRECATED: JsonDict = {"deprecated": True}


class ClientPatch(BaseModel):
    """`PATCH /clients/me`: a new name and/or settings to merge, under `settings` as
    `GET /clients/me` shows them. The same settings at the top level are the older form
    (API.md §3), still accepted; a setting given in both places is a 422. The admin key's
    `PATCH /clients/{id}` takes the same body; there a rate limit is set past the caps (and
    becomes the client's cap), and `null` gives it back the deployment's default and cap."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"settings": {"rate_limits": {"requests_per_minute": 600}}},
                {"name": "Acme", "settings": {"room_inactivity_seconds": {"support": 86400}}},
            ]
        },
    )

    name: ClientName | None = None
    settings: ClientSettingsPatch | None = None
    room_inactivity_seconds: dict[RoomType, InactivitySeconds] | None = Field(
        default=None,
        description="Deprecated: `settings.room_inactivity_seconds`.",
        json_schema_extra=_DEPRECATED,
    )
    max_room_members: int | None = Field(
        default=None,
        strict=True,
        ge=2,
        le=100_000,
        description="Deprecated: `settings.max_room_members`.",
        json_schema_extra=_DEPRECATED,
    )
    rate_limits: ClientRateLimits | None = Field(
        default=None,
        description="Deprecated: `settings.rate_limits`.",
        json_schema_extra=_DEPRECATED,
    )

    @model_validator(mode="after")
    def _each_setting_once(self) -> ClientPatch:
        twice = sorted(self._nested() & self.model_fields_set)
        if twice:
            raise PydanticCustomError(
                "setting_given_twice",
                "{names} given both under settings and at the top level: give each once "
                "(under settings)",
                {"names": ", ".join(twice)},
            )
        return self

    def _nested(self) -> set[str]:
        return set(self.settings.model_fields_set) if self.settings is not None else set()

    def changes(self) -> ClientSettingsPatch:
        """The settings to change, from `settings` and the top-level form together (only
        those given are set, so `model_dump(exclude_unset=True)` is the change)."""
        given = {
            name: getattr(self.settings if name in self._nested() else self, name)
            for name in ClientSettingsPatch.model_fields
            if name in self._nested() or name in self.model_fields_set
        }
        return ClientSettingsPatch.model_construct(_fields_set=set(given), **given)

    def loc(self, name: str) -> tuple[str, ...]:
        """Where setting `name` was in the body, for an error's `loc`."""
        return ("body", "settings", name) if name in self._nested() else ("body", name)


class RotateKeyRequest(BaseModel):
    """`POST /clients/me/rotate-key`."""

    grace_seconds: int = Field(default=0, strict=True, ge=0, le=30 * DAY)


class RotatedKey(BaseModel):
    """The new master key and when the old ones stop working."""

    master_key: str
    old_keys_expire_at: datetime
