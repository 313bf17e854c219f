"""`GET /event-types/openapi.json`: a tenant's catalog as an OpenAPI 3.1 `webhooks` section.

Receivers generate their handlers' types from it (as Svix's per-application document): one
entry per live event type, whose request body is the channel's envelope
`{"type","timestamp","data"}` with `data` being the type's payload schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.events.models import EventType

_HEADERS = {
    name: {
        "in": "header",
        "name": name,
        "required": True,
        "schema": {"type": "string"},
        "description": text,
    }
    for name, text in (
        ("webhook-id", "The delivery id, the same on every retry: dedupe on it."),
        ("webhook-timestamp", "Unix seconds when this attempt was signed."),
        ("webhook-signature", "`v1,<base64 HMAC-SHA256>` per Standard Webhooks."),
    )
}


def _operation(row: EventType) -> dict[str, Any]:
    data = row.payload_schema if row.payload_schema is not None else {"type": "object"}
    return {
        "post": {
            "operationId": f"webhook.{row.name}",
            "summary": row.name,
            "description": row.description or row.name,
            "parameters": list(_HEADERS.values()),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["type", "timestamp", "data"],
                            "properties": {
                                "type": {"const": row.name},
                                "timestamp": {"type": "string", "format": "date-time"},
                                "data": data,
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "Any 2xx: delivered."},
                "default": {"description": "Anything else: retried."},
            },
        }
    }


def document(client_name: str, rows: Sequence[EventType]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the client's live event types."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": f"{client_name} webhooks",
            "version": "1",
            "description": "The webhook events this tenant sends, signed per Standard Webhooks.",
        },
        "webhooks": {row.name: _operation(row) for row in rows},
    }
