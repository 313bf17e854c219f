"""The event catalog: its types, and the check every webhook send passes when a tenant has one.

A tenant without a live (non-archived) type sends any event type, as before the catalog.
With one, a send's `webhook.event_type` must name a live type, and its `payload` must match
that type's JSON Schema. Operational events the service itself emits (`delivery.exhausted`,
`endpoint.disabled`) are not the tenant's to declare and always pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.events import repository
from app.events.models import EventType
from app.events.schemas import EventTypeCreate, EventTypePatch

# The channel whose event types the catalog declares.
CHECKED_CHANNEL = "webhook"
# Emitted by the service (app/notifications/operational.py), never declared by a tenant.
OPERATIONAL_EVENT_TYPES = frozenset({"delivery.exhausted", "endpoint.disabled"})


def check_schema(schema: dict[str, Any] | None) -> None:
    """422 unless `schema` is a valid JSON Schema (checked against its meta-schema)."""
    if schema is None:
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise Unprocessable(
            f"Not a valid JSON Schema: {exc.message}", loc=("body", "schema")
        ) from None


async def create(session: AsyncSession, client_id: str, body: EventTypeCreate) -> EventType:
    """Add a type to the client's catalog; 409 when the name is taken (archived too)."""
    check_schema(body.schema_)
    if body.name in OPERATIONAL_EVENT_TYPES:
        raise Conflict(f"{body.name} is an operational event of the service")
    now = utcnow()
    row = EventType(
        id=new_id(),
        client_id=client_id,
        name=body.name,
        description=body.description,
        payload_schema=body.schema_,
        archived=body.archived,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"The event type {body.name} already exists") from None
    return row


async def get(session: AsyncSession, client_id: str, name: str) -> EventType:
    """One type of the client, or 404."""
    row = await repository.get(session, client_id, name)
    if row is None:
        raise NotFound("No such event type")
    return row


async def list_types(
    session: AsyncSession, client_id: str, limit: int, after: str | None, include_archived: bool
) -> Sequence[EventType]:
    """A page (`limit + 1` rows) of the client's types by name."""
    return await repository.list_page(session, client_id, limit, after, include_archived)


async def update(
    session: AsyncSession, client_id: str, name: str, body: EventTypePatch
) -> EventType:
    """Change a type's description, schema or archived flag."""
    row = await get(session, client_id, name)
    given = body.model_fields_set
    if "schema_" in given:
        check_schema(body.schema_)
        row.payload_schema = body.schema_
    if "description" in given:
        row.description = body.description
    if "archived" in given and body.archived is not None:
        row.archived = body.archived
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    return row


async def delete(session: AsyncSession, client_id: str, name: str) -> None:
    """Remove a type from the catalog (archiving keeps it listed; deleting does not)."""
    row = await get(session, client_id, name)
    await repository.delete(session, row)
    await session.commit()


async def live_types(session: AsyncSession, client_id: str) -> Sequence[EventType]:
    """Every live type of the client."""
    return await repository.all_live(session, client_id)


async def check_send(session: AsyncSession, client_id: str, event_type: str, payload: Any) -> None:
    """422 when the client has a catalog and `event_type` is not in it, or `payload` does
    not match the type's schema."""
    if event_type in OPERATIONAL_EVENT_TYPES:
        return
    has_catalog, known, schema = await repository.lookup(session, client_id, event_type)
    if not has_catalog:
        return
    if not known:
        raise Unprocessable(
            f"Unknown event type {event_type!r}: add it to the catalog (POST /event-types) "
            "or unarchive it",
            loc=("body", "webhook", "event_type"),
        )
    if schema is None:
        return
    try:
        error = next(iter(Draft202012Validator(schema).iter_errors(payload)), None)
    except Exception as exc:
        # The schema is the tenant's input: one that cannot be applied (a `$ref` to a
        # document it does not contain — never fetched) is its problem to fix, not a 500.
        raise Unprocessable(
            f"The schema of {event_type} cannot be applied: {str(exc)[:200]}",
            loc=("body", "webhook", "event_type"),
        ) from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise Unprocessable(
            f"The payload does not match the schema of {event_type}: at {where}: "
            f"{error.message[:300]}",
            loc=("body", "webhook", "payload", *[str(p) for p in error.absolute_path]),
        )
