"""Request and response shapes of `/event-types`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.events.models import EventType

# Dotted names as Svix and CloudEvents use them: `order.shipped`, `invoice.paid.v2`.
EVENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


class EventTypeCreate(BaseModel):
    """`POST /event-types`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "order.shipped",
                    "description": "An order left the warehouse",
                    "schema": {
                        "type": "object",
                        "required": ["order_id"],
                        "properties": {"order_id": {"type": "string"}},
                    },
                }
            ]
        },
    )

    name: str = Field(pattern=EVENT_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON Schema (2020-12) of the payload."
    )
    archived: bool = False


class EventTypePatch(BaseModel):
    """`PATCH /event-types/{name}`: any of the fields; `"schema": null` removes the schema."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=1000)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    archived: bool | None = None


class EventTypeOut(BaseModel):
    """An event type of the catalog."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    description: str | None
    schema_: dict[str, Any] | None = Field(alias="schema")
    archived: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: EventType) -> EventTypeOut:
        """The public view of a row."""
        return cls(
            name=row.name,
            description=row.description,
            schema_=row.payload_schema,
            archived=row.archived,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EventTypePage(BaseModel):
    """A page of event types, by name."""

    data: list[EventTypeOut]
    has_more: bool
    next_cursor: str | None
