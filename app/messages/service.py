"""Messages: send (gapless seq, idempotent, reactivating), read, edit, soft delete."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.principal import Principal
from app.core.clock import utcnow
from app.core.db import Database
from app.core.errors import Conflict, Forbidden, NotFound, PayloadTooLarge
from app.core.ids import new_id
from app.messages import repository
from app.messages.models import Message
from app.messages.schemas import MessageCreate, MessageOut, MessagePatch
from app.realtime import events
from app.realtime.bus import EventBus
from app.rooms import service as rooms


def _check_size(content: str, max_bytes: int) -> None:
    size = len(content.encode())
    if size > max_bytes:
        raise PayloadTooLarge(f"Message content is {size} bytes; the limit is {max_bytes}")


async def send_message(
    db: Database,
    bus: EventBus,
    principal: Principal,
    room_id: str,
    body: MessageCreate,
    max_bytes: int,
) -> tuple[MessageOut, bool]:
    """Store the next message of the room; (message, True) when new, (first, False) on a
    repeated client_message_id."""
    _check_size(body.content, max_bytes)
    row = {
        "id": new_id(),
        "client_id": principal.client_id,
        "room_id": room_id,
        "sender_id": principal.user_id,
        "content": body.content,
        "content_type": body.content_type,
        "metadata": body.metadata,
        "client_message_id": body.client_message_id,
        "created_at": utcnow(),
    }
    member_id = None if principal.is_master else principal.user_id
    if body.client_message_id is None:
        # One repository call locks the room, numbers the message (gapless: under the lock),
        # stores it and marks it read by its sender, as a transaction of its own; a
        # non-member learns nothing (404).
        appended = await repository.append_alone(
            db, row, member_id=member_id, reader_id=principal.user_id
        )
    else:
        async with db.session() as session:
            # The room row lock serialises senders, so the idempotency check is race-free.
            await rooms.accessible_room(session, principal, room_id, lock=True)
            first = await repository.by_client_message_id(
                session, principal.client_id, room_id, body.client_message_id
            )
            if first is not None:
                return MessageOut.of(first), False  # the session's end releases the lock
            appended = await repository.append(
                session, row, member_id=member_id, reader_id=principal.user_id
            )
            if appended is not None:
                await session.commit()
    if appended is None:
        raise NotFound("No such room")
    out = MessageOut.of_row(row, appended.seq)
    if appended.reactivated:
        await rooms.publish_reactivated(bus, principal.client_id, room_id)
    await bus.publish_after_commit(
        principal.client_id,
        events.room_target(room_id),
        events.MESSAGE_CREATED,
        out.model_dump(mode="json"),
    )
    return out, True


async def list_messages(
    session: AsyncSession,
    principal: Principal,
    room_id: str,
    *,
    limit: int,
    before_seq: int | None,
    after_seq: int | None,
) -> tuple[list[MessageOut], bool]:
    """A page of a room's messages and whether more exist in that direction."""
    await rooms.accessible_room(session, principal, room_id)
    rows = await repository.page(
        session,
        principal.client_id,
        room_id,
        limit=limit,
        before_seq=before_seq,
        after_seq=after_seq,
    )
    return [MessageOut.of(m) for m in rows[:limit]], len(rows) > limit


async def _own_message(
    session: AsyncSession, principal: Principal, room_id: str, message_id: str
) -> Message:
    await rooms.accessible_room(session, principal, room_id)
    message = await repository.get(session, principal.client_id, room_id, message_id)
    if message is None:
        raise NotFound("No such message")
    if not principal.is_master and message.sender_id != principal.user_id:
        # The caller can see the message (it is a member), so 403 leaks nothing new.
        raise Forbidden("Only the sender or the master key can change a message")
    return message


async def edit_message(
    session: AsyncSession,
    bus: EventBus,
    principal: Principal,
    room_id: str,
    message_id: str,
    patch: MessagePatch,
    max_bytes: int,
) -> MessageOut:
    """Edit a message's content or metadata."""
    message = await _own_message(session, principal, room_id, message_id)
    if message.deleted_at is not None:
        raise Conflict("A deleted message cannot be edited")
    changes = patch.model_dump(exclude_unset=True)
    if changes.get("content") is not None:
        _check_size(changes["content"], max_bytes)
        message.content = changes["content"]
    if "metadata" in changes:
        message.metadata_ = changes["metadata"] or {}
    message.edited_at = utcnow()
    await session.commit()
    out = MessageOut.of(message)
    await bus.publish_after_commit(
        principal.client_id,
        events.room_target(room_id),
        events.MESSAGE_UPDATED,
        out.model_dump(mode="json"),
    )
    return out


async def delete_message(
    session: AsyncSession, bus: EventBus, principal: Principal, room_id: str, message_id: str
) -> MessageOut:
    """Soft-delete: the message keeps its seq, its content is removed."""
    message = await _own_message(session, principal, room_id, message_id)
    if message.deleted_at is None:
        message.deleted_at = utcnow()
        message.content = ""
        message.metadata_ = {}
        await session.commit()
        out = MessageOut.of(message)
        await bus.publish_after_commit(
            principal.client_id,
            events.room_target(room_id),
            events.MESSAGE_DELETED,
            out.model_dump(mode="json"),
        )
        return out
    return MessageOut.of(message)
