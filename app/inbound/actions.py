"""What a processed inbound event does: its action, given its input.

Each action takes the process's runtime, the client, the hook and the event's input (the
rendered template, or the body) and returns its outcome — what it created, with ids — or
raises ActionFailed (a permanent failure, recorded on the event). Anything else it raises
is treated as transient by the task and retried.

`message` and `room` go through the rooms and messages services as the client's master;
`notify` and `forward` through the relay's `/notifications/send` service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from app.auth.principal import KeyKind, Principal
from app.core.clock import utcnow
from app.core.errors import AppError, NotFound
from app.core.ids import new_id
from app.inbound import room_keys
from app.inbound.schemas import MessageInput, RoomInput
from app.messages import service as messages
from app.messages.schemas import MessageCreate
from app.notifications import service as notifications
from app.notifications.schemas import SendRequest
from app.rooms import service as rooms
from app.rooms.schemas import RoomCreate
from app.runtime import Runtime


class ActionFailed(Exception):
    """The action cannot succeed with this input (recorded; not retried)."""


@dataclass(frozen=True)
class Job:
    """One processing of an event: whose, which hook, which generation (for idempotency)."""

    client_id: str
    hook_id: str
    event_id: str
    generation: int
    config: dict[str, Any]

    @property
    def principal(self) -> Principal:
        """The client's master, on whose behalf the action acts."""
        return Principal(
            kind=KeyKind.master, key_id=f"inbound:{self.hook_id}", client_id=self.client_id
        )

    @property
    def idempotency_key(self) -> str:
        """Stable across retries of one generation; a replay starts a new one."""
        return f"inbound:{self.event_id}:{self.generation}"


def _parse(model: type[Any], value: Any, what: str) -> Any:
    if not isinstance(value, dict):
        raise ActionFailed(f"{what}: the input must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        raise ActionFailed(f"{what}: {where}: {first['msg']}") from None


async def find_or_create_room(runtime: Runtime, job: Job, spec: RoomInput) -> dict[str, Any]:
    """The room for `spec.key` (created on first use), or a new room when there is no key."""
    settings = runtime.settings
    body = RoomCreate(
        name=spec.name, type=spec.type, member_ids=spec.member_ids, metadata=spec.metadata
    )
    async with runtime.db.session() as session:
        try:
            if spec.key is None:
                out, _ = await rooms.create_room(
                    session,
                    runtime.bus,
                    job.principal,
                    body,
                    member_ids_max=settings.ROOM_MEMBER_IDS_MAX,
                )
                return {"room_id": out.id, "room_created": True}
            now = utcnow()
            room_id = await room_keys.reserve(
                session, job.client_id, job.hook_id, spec.key, room_id=new_id(), now=now
            )
            if await _room_exists(session, job, room_id):
                await session.commit()
                return {"room_id": room_id, "room_created": False, "key": spec.key}
            fresh = new_id()
            pointed = await room_keys.replace(
                session,
                job.client_id,
                job.hook_id,
                spec.key,
                old_room_id=room_id,
                new_room_id=fresh,
            )
            if pointed != fresh and await _room_exists(session, job, pointed):
                await session.commit()
                return {"room_id": pointed, "room_created": False, "key": spec.key}
            out, _ = await rooms.create_room(
                session,
                runtime.bus,
                job.principal,
                body,
                member_ids_max=settings.ROOM_MEMBER_IDS_MAX,
                room_id=pointed,
            )
            return {"room_id": out.id, "room_created": True, "key": spec.key}
        except IntegrityError:
            # A concurrent event for the same key created its room first (SQLite
            # serialises writers; PostgreSQL gets here): that room is the answer.
            await session.rollback()
            if spec.key is None:
                raise
            async with runtime.db.read_session() as read:
                winner = await room_keys.get(read, job.client_id, job.hook_id, spec.key)
            if winner is None:
                raise
            return {"room_id": winner, "room_created": False, "key": spec.key}
        except AppError as exc:
            raise ActionFailed(f"room: {exc.detail}") from None


async def _room_exists(session: Any, job: Job, room_id: str) -> bool:
    try:
        await rooms.accessible_room(session, job.principal, room_id)
    except NotFound:
        return False
    return True


async def room(runtime: Runtime, job: Job, data: Any) -> dict[str, Any]:
    """Find or create a room from the input (idempotent per `key`)."""
    spec: RoomInput = _parse(RoomInput, data, "room")
    return await find_or_create_room(runtime, job, spec)


async def message(runtime: Runtime, job: Job, data: Any) -> dict[str, Any]:
    """Post the input's `content` into config.room_id, the input's room_id, or the room
    found or created by the input's `room`."""
    spec: MessageInput = _parse(MessageInput, data, "message")
    outcome: dict[str, Any] = {}
    room_id = job.config.get("room_id") or spec.room_id
    if room_id is None:
        if spec.room is None:
            raise ActionFailed("message: no room — set config.room_id, or give room_id or room")
        outcome = await find_or_create_room(runtime, job, spec.room)
        room_id = outcome["room_id"]
    body = MessageCreate(
        content=spec.content,
        content_type=spec.content_type,
        metadata=spec.metadata,
        # Retries of one generation post once; a replay (new generation) posts again.
        client_message_id=job.idempotency_key,
    )
    try:
        out, created = await messages.send_message(
            runtime.db,
            runtime.bus,
            job.principal,
            str(room_id),
            body,
            runtime.settings.MAX_MESSAGE_BYTES,
        )
    except AppError as exc:
        raise ActionFailed(f"message: {exc.detail}") from None
    return {
        **outcome,
        "room_id": out.room_id,
        "message_id": out.id,
        "seq": out.seq,
        "message_created": created,
    }


async def notify(
    runtime: Runtime, client_id: str, request: dict[str, Any], *, idempotency_key: str
) -> dict[str, Any]:
    """Send `request` as the client's `/notifications/send` request, through the same
    service (a retry of one generation is the same send: its idempotency key)."""
    body: SendRequest = _parse(SendRequest, request, "notify")
    body = body.model_copy(update={"idempotency_key": idempotency_key})
    async with runtime.db.session() as session:
        try:
            # The event may be processed (retried, replayed) long after it arrived: a
            # send_at that has passed by then means now.
            result = await notifications.send(
                session,
                client_id,
                body,
                channels=runtime.channels,
                max_total_bytes=runtime.settings.NOTIFICATION_MAX_TOTAL_BYTES,
                doorbell=runtime.doorbell,
                past_send_at_is_now=True,
            )
        except AppError as exc:
            raise ActionFailed(f"notify: {exc.detail}") from None
    out = result.notification
    return {"notification_id": out.id, "status": out.status, "deliveries": len(out.deliveries)}


async def forward(
    runtime: Runtime, client_id: str, event_type: str, payload: Any, *, idempotency_key: str
) -> dict[str, Any]:
    """Relay `payload` to the client's webhook endpoints subscribed to `event_type`: a
    webhook-channel notification, so delivery, retries and attempts are the relay's."""
    if not event_type or event_type == "None":
        raise ActionFailed("forward: the hook's config.event_type is not set")
    request = {
        "channels": ["webhook"],
        # A webhook body's data is an object: a non-object input travels under "body".
        "webhook": {
            "event_type": event_type,
            "payload": payload if isinstance(payload, dict) else {"body": payload},
        },
    }
    return await notify(runtime, client_id, request, idempotency_key=idempotency_key)


def merge_defaults(defaults: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`data` over `defaults`, objects merged key by key (the input wins)."""
    merged = dict(defaults)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_defaults(merged[key], value)
        else:
            merged[key] = value
    return merged


async def run(runtime: Runtime, job: Job, action: str, data: Any) -> dict[str, Any]:
    """Dispatch to the hook's action; its outcome, or ActionFailed."""
    if action == "message":
        return await message(runtime, job, data)
    if action == "room":
        return await room(runtime, job, data)
    if action == "notify":
        if not isinstance(data, dict):
            raise ActionFailed("notify: the input must be a JSON object")
        request = merge_defaults(job.config.get("defaults") or {}, data)
        return await notify(runtime, job.client_id, request, idempotency_key=job.idempotency_key)
    if action == "forward":
        return await forward(
            runtime,
            job.client_id,
            str(job.config.get("event_type")),
            data,
            idempotency_key=job.idempotency_key,
        )
    raise ActionFailed(f"unknown action {action!r}")
