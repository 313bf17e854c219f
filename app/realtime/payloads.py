"""The shapes of real-time event data, both ways (API.md §5).

Client → server models are what ClientEvents validates with; server → client models
describe the data the services publish (and the AsyncAPI document, app/realtime/asyncapi.py,
is built from them; tests/realtime/test_asyncapi.py holds live traffic to them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.messages.schemas import MessageCreate, MessageOut

SYNC_MAX = 200

# --- client → server ----------------------------------------------------------------------


class RoomRef(BaseModel):
    """`typing`, `subscribe`, `unsubscribe`: the room the event is about."""

    model_config = ConfigDict(extra="ignore")
    room_id: str = Field(min_length=1, max_length=26)


class MessageSend(MessageCreate):
    """`message.send`: `POST /rooms/{room_id}/messages` over the socket."""

    model_config = ConfigDict(extra="forbid")
    room_id: str = Field(min_length=1, max_length=26)


class ReadRequest(RoomRef):
    """`read`: mark the room read up to `seq`."""

    seq: int = Field(strict=True, ge=0)


class SyncRequest(RoomRef):
    """`sync`: the messages after `after_seq`, oldest first (recovery after a reconnect)."""

    after_seq: int = Field(strict=True, ge=0)
    limit: int = Field(default=100, strict=True, ge=1, le=SYNC_MAX)


class Empty(BaseModel):
    """`ping`, `pong`: no data."""


# --- acknowledgements ---------------------------------------------------------------------


class TypingAck(BaseModel):
    """The acknowledgement of `typing`."""

    room_id: str


class SyncResult(BaseModel):
    """The acknowledgement of `sync`."""

    room_id: str
    messages: list[MessageOut]
    has_more: bool


class Subscription(BaseModel):
    """The acknowledgement of `subscribe` / `unsubscribe` (master-key connections)."""

    room_id: str
    subscribed: bool


class SocketProblem(BaseModel):
    """A refused client event: the REST problem's fields."""

    type: str | None = None
    title: str | None = None
    status: int
    detail: str


# --- server → client ----------------------------------------------------------------------


class Connected(BaseModel):
    """`connected`: the first event of every connection; its subscriptions are live."""

    connection_id: str
    user_id: str | None = Field(description="None for a master-key connection.")
    room_ids: list[str]
    transport: Literal["websocket", "socketio"]


class RoomEvent(BaseModel):
    """`room.reactivated`."""

    room_id: str


class RoomDeactivated(RoomEvent):
    """`room.deactivated` after its type's inactivity period."""

    deactivated_at: datetime


class RoomMember(BaseModel):
    """`room.member_joined`, `room.member_left`; `typing` (who is typing)."""

    room_id: str
    user_id: str


class ReadEvent(RoomMember):
    """`read`: a member read the room up to `seq` (also the acknowledgement of `read`)."""

    seq: int


class PresenceEvent(RoomMember):
    """`presence`: a member's first connection opened or last one closed."""

    online: bool


class NotificationEvent(BaseModel):
    """`notification`: a websocket-channel notification (its inbox item is `inbox_id`)."""

    event: str = Field(description="`websocket.event` of the send.")
    data: dict[str, Any] = Field(description="`websocket.data` of the send.")
    notification_id: str
    inbox_id: str


class DisconnectReason(BaseModel):
    """Socket.IO `disconnect_reason`, just before the server disconnects the session."""

    code: int = Field(
        description="4401 no valid key, 4403 key revoked or expired, 4408 not reading fast "
        "enough, 4429 rate limited, 1011 server error."
    )
    reason: str
