"""`/rooms`: rooms, members and read markers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.api.deps import (
    BusDep,
    MasterDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_scope,
)
from app.auth.principal import Principal, Scope
from app.core.openapi import problems
from app.core.pagination import PageParams, page_params
from app.rooms import service
from app.rooms.schemas import (
    MemberPage,
    MembersAdd,
    ReadMarker,
    ReadOut,
    RoomCreate,
    RoomOut,
    RoomPage,
    RoomPatch,
)
from app.tenants.schemas import RoomType

router = APIRouter(prefix="/rooms", tags=["rooms"])

RoomsRead = Annotated[Principal, Depends(require_scope(Scope.rooms_read.value))]
RoomsWrite = Annotated[Principal, Depends(require_scope(Scope.rooms_write.value))]
MessagesRead = Annotated[Principal, Depends(require_scope(Scope.messages_read.value))]
Page = Annotated[PageParams, Depends(page_params)]
TypeFilter = Annotated[RoomType | None, Query(alias="type")]


@router.post(
    "",
    status_code=201,
    response_model=RoomOut,
    responses={
        200: {"model": RoomOut, "description": "The direct room of this pair already existed"}
    },
)
async def create_room(
    body: RoomCreate,
    principal: RoomsWrite,
    session: SessionDep,
    bus: BusDep,
    settings: SettingsDep,
    response: Response,
) -> RoomOut:
    """Create a room (201); a direct room that already exists for the pair is returned (200)."""
    room, created = await service.create_room(
        session, bus, principal, body, member_ids_max=settings.ROOM_MEMBER_IDS_MAX
    )
    response.status_code = 201 if created else 200
    return room


async def _listing(
    principal: Principal,
    session: ReadSessionDep,
    settings: SettingsDep,
    page: PageParams,
    room_type: RoomType | None,
    is_active: bool | None,
    *,
    all_rooms: bool,
) -> RoomPage:
    data, has_more, cursor = await service.list_rooms(
        session,
        principal,
        limit=page.limit,
        after=page.cursor,
        room_type=room_type,
        is_active=is_active,
        all_rooms=all_rooms,
        member_ids_max=settings.ROOM_MEMBER_IDS_MAX,
    )
    return RoomPage(data=data, has_more=has_more, next_cursor=cursor)


@router.get("", response_model=RoomPage)
async def list_rooms(
    principal: RoomsRead,
    session: ReadSessionDep,
    settings: SettingsDep,
    page: Page,
    room_type: TypeFilter = None,
    is_active: bool | None = None,
) -> RoomPage:
    """A user key: its rooms with `unread_count`. The master key: every room."""
    return await _listing(principal, session, settings, page, room_type, is_active, all_rooms=False)


@router.get("/all", response_model=RoomPage)
async def list_all_rooms(
    principal: MasterDep,
    session: ReadSessionDep,
    settings: SettingsDep,
    page: Page,
    room_type: TypeFilter = None,
    is_active: bool | None = None,
) -> RoomPage:
    """Every room of the client (the admin listing)."""
    return await _listing(principal, session, settings, page, room_type, is_active, all_rooms=True)


@router.get("/{room_id}", response_model=RoomOut)
async def get_room(
    room_id: str, principal: RoomsRead, session: ReadSessionDep, settings: SettingsDep
) -> RoomOut:
    """One room the caller may see."""
    return await service.get_room(
        session, principal, room_id, member_ids_max=settings.ROOM_MEMBER_IDS_MAX
    )


@router.patch("/{room_id}", response_model=RoomOut)
async def patch_room(
    room_id: str, body: RoomPatch, principal: RoomsWrite, session: SessionDep, settings: SettingsDep
) -> RoomOut:
    """Rename a room or replace its metadata."""
    return await service.update_room(
        session, principal, room_id, body, member_ids_max=settings.ROOM_MEMBER_IDS_MAX
    )


@router.delete("/{room_id}", status_code=204)
async def delete_room(
    room_id: str, principal: RoomsWrite, session: SessionDep, bus: BusDep
) -> Response:
    """Delete a room, its members and its messages."""
    await service.delete_room(session, bus, principal, room_id)
    return Response(status_code=204)


@router.get("/{room_id}/members", response_model=MemberPage)
async def list_members(
    room_id: str, principal: RoomsRead, session: ReadSessionDep, page: Page
) -> MemberPage:
    """The room's members by user id, in cursor pages (member or master)."""
    data, has_more, cursor = await service.list_members(
        session, principal, room_id, limit=page.limit, after=page.cursor
    )
    return MemberPage(data=data, has_more=has_more, next_cursor=cursor)


@router.post("/{room_id}/members", response_model=RoomOut, responses=problems(409))
async def add_members(
    room_id: str,
    body: MembersAdd,
    principal: RoomsWrite,
    session: SessionDep,
    bus: BusDep,
    settings: SettingsDep,
) -> RoomOut:
    """Add users to the room."""
    return await service.add_members(
        session,
        bus,
        principal,
        room_id,
        body.user_ids,
        member_ids_max=settings.ROOM_MEMBER_IDS_MAX,
    )


@router.delete("/{room_id}/members/{user_id}", status_code=204, responses=problems(409))
async def remove_member(
    room_id: str, user_id: str, principal: RoomsWrite, session: SessionDep, bus: BusDep
) -> Response:
    """Remove a user from the room."""
    await service.remove_member(session, bus, principal, room_id, user_id)
    return Response(status_code=204)


@router.post("/{room_id}/read", response_model=ReadOut)
async def mark_read(
    room_id: str, body: ReadMarker, principal: MessagesRead, session: SessionDep, bus: BusDep
) -> ReadOut:
    """Mark the room read up to `seq` (a user key; the marker never moves back)."""
    seq = await service.mark_read(session, bus, principal, room_id, body.seq)
    return ReadOut(room_id=room_id, user_id=principal.user_id or "", seq=seq)
