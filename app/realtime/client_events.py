"""Client → server events, the same for both transports; each goes through the services
REST uses (`message.send` is `POST /rooms/{id}/messages`)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.auth import scopes
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import AppError, Forbidden, NotFound, RateLimited, Unprocessable
from app.messages import service as messages
from app.messages.schemas import MessageCreate
from app.realtime import events
from app.realtime.bus import EventBus
from app.realtime.connection import EVENT_BURST, EVENTS_PER_SECOND, Connection
from app.realtime.hub import Hub
from app.realtime.payloads import MessageSend, ReadRequest, RoomRef, SyncRequest
from app.rooms import service as rooms


class ClientEvents:
    """Handles one client event for a connection; returns the acknowledgement data."""

    def __init__(self, db: Database, bus: EventBus, settings: Settings, hub: Hub) -> None:
        self._db = db
        self._bus = bus
        self._settings = settings
        self._hub = hub

    async def handle(self, conn: Connection, event: str, data: Any) -> dict[str, Any]:
        """Run `event`; raises AppError (rendered by the transport) on a refusal."""
        if not conn.allow_client_event():
            raise RateLimited(
                f"Too many events on this connection: at most {EVENTS_PER_SECOND:g} per second "
                f"(bursts of {EVENT_BURST:g})",
                retry_after=1,
            )
        if not isinstance(data, dict):
            data = {}
        # The scope rules REST routes use too (app/auth/scopes.py).
        scopes.require_client_event(conn.principal, event)
        try:
            if event == "ping":
                return {}
            if event == "message.send":
                return await self._send(conn, MessageSend.model_validate(data))
            if event == "typing":
                return await self._typing(conn, RoomRef.model_validate(data))
            if event == "read":
                return await self._read(conn, ReadRequest.model_validate(data))
            if event == "sync":
                return await self._sync(conn, SyncRequest.model_validate(data))
            if event in ("subscribe", "unsubscribe"):
                return await self._subscription(conn, event, RoomRef.model_validate(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Unprocessable(f"{event}: {where}: {first['msg']}") from None
        raise NotFound(f"Unknown event {event!r}")

    async def _send(self, conn: Connection, body: MessageSend) -> dict[str, Any]:
        create = MessageCreate.model_validate(body.model_dump(exclude={"room_id"}))
        message, _ = await messages.send_message(
            self._db,
            self._bus,
            conn.principal,
            body.room_id,
            create,
            self._settings.MAX_MESSAGE_BYTES,
        )
        return message.model_dump(mode="json")

    async def _typing(self, conn: Connection, body: RoomRef) -> dict[str, Any]:
        if conn.user_id is None:
            raise Unprocessable("typing belongs to users: connect with a user key")
        if events.room_target(body.room_id) not in conn.targets:
            # Not subscribed (a key without read scopes follows no rooms): ask the database
            # whether the user is a member; 404 otherwise.
            async with self._db.read_session() as session:
                await rooms.accessible_room(session, conn.principal, body.room_id)
        if conn.allow_typing(body.room_id):
            await self._bus.publish(
                conn.client_id,
                events.room_target(body.room_id),
                events.TYPING,
                {"room_id": body.room_id, "user_id": conn.user_id},
                exclude_key=conn.id,
            )
        return {"room_id": body.room_id}

    async def _read(self, conn: Connection, body: ReadRequest) -> dict[str, Any]:
        async with self._db.session() as session:
            seq = await rooms.mark_read(session, self._bus, conn.principal, body.room_id, body.seq)
        return {"room_id": body.room_id, "user_id": conn.user_id, "seq": seq}

    async def _subscription(self, conn: Connection, event: str, body: RoomRef) -> dict[str, Any]:
        # A user connection follows its memberships by itself; a master connection hears
        # nothing until it subscribes to rooms of its client.
        if not conn.principal.is_master:
            raise Forbidden("Only master-key connections choose their rooms")
        target = events.room_target(body.room_id)
        if event == "subscribe":
            async with self._db.read_session() as session:
                await rooms.accessible_room(session, conn.principal, body.room_id)
            await self._hub.subscribe(conn, target)
        else:
            await self._hub.unsubscribe(conn, target)
        return {"room_id": body.room_id, "subscribed": event == "subscribe"}

    async def _sync(self, conn: Connection, body: SyncRequest) -> dict[str, Any]:
        async with self._db.read_session() as session:
            found, has_more = await messages.list_messages(
                session,
                conn.principal,
                body.room_id,
                limit=body.limit,
                before_seq=None,
                after_seq=body.after_seq,
            )
        return {
            "room_id": body.room_id,
            "messages": [m.model_dump(mode="json") for m in found],
            "has_more": has_more,
        }


def problem_of(exc: AppError) -> dict[str, Any]:
    """An AppError as the problem object sent back over a socket."""
    return {"type": exc.code, "title": exc.title, "status": exc.status, "detail": exc.detail}
