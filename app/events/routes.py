"""`/event-types`: the tenant's event catalog (master key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from app.api.deps import MasterDep, ReadSessionDep, SessionDep
from app.core.openapi import problems
from app.core.pagination import PageParams, make_page, page_params
from app.events import openapi_doc, service
from app.events.schemas import EventTypeCreate, EventTypeOut, EventTypePage, EventTypePatch
from app.tenants import service as tenants

router = APIRouter(prefix="/event-types", tags=["event-types"])


@router.post("", status_code=201, response_model=EventTypeOut, responses=problems(409, 422))
async def create_event_type(
    body: EventTypeCreate, principal: MasterDep, session: SessionDep
) -> EventTypeOut:
    """Add an event type; its `schema` must be a valid JSON Schema (2020-12)."""
    return EventTypeOut.of(await service.create(session, principal.client_id, body))


@router.get("", response_model=EventTypePage)
async def list_event_types(
    principal: MasterDep,
    session: ReadSessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    include_archived: Annotated[bool, Query()] = False,
) -> EventTypePage:
    """The catalog by name (cursor: the last name)."""
    rows = await service.list_types(
        session, principal.client_id, page.limit, page.cursor, include_archived
    )
    items, has_more, cursor = make_page(list(rows), page.limit, "name")
    return EventTypePage(
        data=[EventTypeOut.of(r) for r in items], has_more=has_more, next_cursor=cursor
    )


# Declared before `/{name}`, which would otherwise take `openapi.json` as a name.
@router.get("/openapi.json")
async def event_types_openapi(principal: MasterDep, session: ReadSessionDep) -> dict[str, Any]:
    """An OpenAPI 3.1 document whose `webhooks` are the tenant's live event types."""
    client = await tenants.get_client(session, principal.client_id)
    rows = await service.live_types(session, principal.client_id)
    return openapi_doc.document(client.name, rows)


@router.get("/{name}", response_model=EventTypeOut, responses=problems(404))
async def get_event_type(name: str, principal: MasterDep, session: ReadSessionDep) -> EventTypeOut:
    """One event type (archived ones too)."""
    return EventTypeOut.of(await service.get(session, principal.client_id, name))


@router.patch("/{name}", response_model=EventTypeOut, responses=problems(404, 422))
async def patch_event_type(
    name: str, body: EventTypePatch, principal: MasterDep, session: SessionDep
) -> EventTypeOut:
    """Change the description, the schema (`null` removes it) or `archived`."""
    return EventTypeOut.of(await service.update(session, principal.client_id, name, body))


@router.delete("/{name}", status_code=204, responses=problems(404))
async def delete_event_type(name: str, principal: MasterDep, session: SessionDep) -> Response:
    """Remove an event type from the catalog."""
    await service.delete(session, principal.client_id, name)
    return Response(status_code=204)
