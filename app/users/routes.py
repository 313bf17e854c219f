"""`/users`: the client's end users (master key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.api.deps import AuthenticatorDep, BusDep, MasterDep, ReadSessionDep, SessionDep
from app.core.pagination import PageParams, make_page, page_params
from app.realtime import room_cache
from app.users import service
from app.users.schemas import UserOut, UserPage, UserPatch, UserUpsert

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    status_code=201,
    response_model=UserOut,
    responses={
        200: {"model": UserOut, "description": "Updated: a user with this `external_id` existed"}
    },
)
async def upsert_user(
    body: UserUpsert, principal: MasterDep, session: SessionDep, response: Response
) -> UserOut:
    """Create a user (201), or update the one with this `external_id` (200)."""
    user, created = await service.upsert_user(session, principal.client_id, body)
    response.status_code = 201 if created else 200
    return UserOut.of(user)


@router.get("", response_model=UserPage)
async def list_users(
    principal: MasterDep, session: ReadSessionDep, page: Annotated[PageParams, Depends(page_params)]
) -> UserPage:
    """The client's users, oldest first, by cursor."""
    rows = await service.list_users(session, principal.client_id, page.limit, page.cursor)
    items, has_more, cursor = make_page(list(rows), page.limit, "id")
    return UserPage(data=[UserOut.of(u) for u in items], has_more=has_more, next_cursor=cursor)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: str, principal: MasterDep, session: ReadSessionDep) -> UserOut:
    """One user."""
    return UserOut.of(await service.get_user(session, principal.client_id, user_id))


@router.patch("/{user_id}", response_model=UserOut)
async def patch_user(
    user_id: str, body: UserPatch, principal: MasterDep, session: SessionDep
) -> UserOut:
    """Change a user's profile."""
    return UserOut.of(await service.update_user(session, principal.client_id, user_id, body))


@router.delete("/{user_id}", status_code=204)
async def delete_user(
    user_id: str,
    principal: MasterDep,
    session: SessionDep,
    authenticator: AuthenticatorDep,
    bus: BusDep,
) -> Response:
    """Delete the user; its keys stop working at once."""
    revoked = await service.delete_user(session, principal.client_id, user_id)
    await authenticator.announce_revoked(revoked)
    # Its rooms lost a member (whether they hear presence may change): not read here.
    await room_cache.rooms_changed(bus.broadcast, principal.client_id, everyone=True)
    return Response(status_code=204)
