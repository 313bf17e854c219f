"""`/suppressions`: the tenant's addresses that hard-bounced or complained (master key).
Later e-mail and SMS deliveries to them are stored `skipped` with the reason, never sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import MasterDep, ReadSessionDep, SessionDep
from app.core.errors import NotFound
from app.core.openapi import problems
from app.core.pagination import MAX_PAGE, make_page
from app.providers import suppressions
from app.providers.event_schemas import SuppressionOut, SuppressionPage

router = APIRouter(prefix="/suppressions", tags=["providers"])


@router.get("", response_model=SuppressionPage)
async def list_suppressions(
    principal: MasterDep,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=320, description="`next_cursor` of the last page.")
    ] = None,
) -> SuppressionPage:
    """The client's suppressed addresses by address, with why and since when."""
    rows = await suppressions.list_page(session, principal.client_id, limit=limit, after=cursor)
    items, has_more, next_cursor = make_page(rows, limit, "address")
    return SuppressionPage(
        data=[SuppressionOut.of(r) for r in items], has_more=has_more, next_cursor=next_cursor
    )


@router.delete("/{address}", status_code=204, responses=problems(404))
async def delete_suppression(address: str, principal: MasterDep, session: SessionDep) -> Response:
    """Lift a suppression: later sends to the address go out again. 404 when the address
    is not suppressed."""
    if not await suppressions.remove(session, principal.client_id, address):
        raise NotFound("No such suppression")
    await session.commit()
    return Response(status_code=204)
