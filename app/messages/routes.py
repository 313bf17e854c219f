"""`/rooms/{id}/messages`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.api.deps import (
    BusDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_scope,
    runtime_of,
    scoped_of,
)
from app.api.direct_route import direct_route
from app.api.responses import model_response
from app.auth.principal import Principal, Scope
from app.core.bounds import SEQ_MAX
from app.core.openapi import problems
from app.messages import service
from app.messages.schemas import MessageCreate, MessageOut, MessagePage, MessagePatch

router = APIRouter(prefix="/rooms/{room_id}/messages", tags=["messages"])

MessagesRead = Annotated[Principal, Depends(require_scope(Scope.messages_read.value))]
MessagesWrite = Annotated[Principal, Depends(require_scope(Scope.messages_write.value))]


async def send_message(
    room_id: str,
    body: MessageCreate,
    principal: MessagesWrite,
    request: Request,
) -> Response:
    """Send a message (201); the same `client_message_id` again answers the first (200)."""
    # The hot path: no session, bus or settings dependency, read from the runtime instead.
    runtime = runtime_of(request)
    message, created = await service.send_message(
        runtime.db, runtime.bus, principal, room_id, body, runtime.settings.MAX_MESSAGE_BYTES
    )
    return model_response(message, 201 if created else 200)


async def _send_direct(request: Request, body: Any, headers: dict[str, str | None]) -> Response:
    # A well-formed send without FastAPI's dependency solving (app/api/direct_route.py):
    # the same key and scope check, then the endpoint itself.
    principal = await scoped_of(request, Scope.messages_write.value)
    return await send_message(request.path_params["room_id"], body, principal, request)


router.add_api_route(
    "",
    send_message,
    methods=["POST"],
    status_code=201,
    response_model=MessageOut,
    responses={
        200: {
            "model": MessageOut,
            "description": "A repeated `client_message_id`: the first message",
        }
    },
    route_class_override=direct_route(_send_direct, MessageCreate, {}),
)


@router.get("", response_model=MessagePage)
async def list_messages(
    room_id: str,
    principal: MessagesRead,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_seq: Annotated[int | None, Query(ge=1, le=SEQ_MAX)] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
) -> MessagePage:
    """Newest first; with `after_seq`, oldest first from there (catching up)."""
    data, has_more = await service.list_messages(
        session, principal, room_id, limit=limit, before_seq=before_seq, after_seq=after_seq
    )
    return MessagePage(data=data, has_more=has_more)


@router.patch("/{message_id}", response_model=MessageOut, responses=problems(409))
async def edit_message(
    room_id: str,
    message_id: str,
    body: MessagePatch,
    principal: MessagesWrite,
    session: SessionDep,
    bus: BusDep,
    settings: SettingsDep,
) -> MessageOut:
    """Edit (sender or master)."""
    return await service.edit_message(
        session, bus, principal, room_id, message_id, body, settings.MAX_MESSAGE_BYTES
    )


@router.delete("/{message_id}", response_model=MessageOut)
async def delete_message(
    room_id: str, message_id: str, principal: MessagesWrite, session: SessionDep, bus: BusDep
) -> MessageOut:
    """Soft delete (sender or master): the seq stays, the content goes."""
    return await service.delete_message(session, bus, principal, room_id, message_id)
