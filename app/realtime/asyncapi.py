"""The AsyncAPI 3.0 document of the real-time API, served at `/asyncapi.json` (no key).

Two channels, one per transport, carry the same events (API.md §5): the plain WebSocket at
/api/v1/websocket/open, whose frames are JSON `{"event", "data", "id"?}`, and Socket.IO at
path /sockets, where an event's name is the Socket.IO event and its data the argument.
Operations are from the server's side: `send` for server → client events, `receive` for
client events, whose `reply` is the acknowledgement. Payload schemas come from the models
in app/realtime/payloads.py and the REST schemas they reuse.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.inbox.schemas import InboxCount
from app.messages.schemas import MessageOut
from app.notifications.operational import DeliveryExhaustedData, EndpointDisabledData
from app.realtime import events
from app.realtime import payloads as p

ASYNCAPI_PATH = "/asyncapi.json"
REF = "#/components/schemas/"

# Server → client: event -> (data model, summary).
SERVER_EVENTS: dict[str, tuple[type[BaseModel], str]] = {
    events.CONNECTED: (p.Connected, "First event of every connection: it is subscribed."),
    events.MESSAGE_CREATED: (MessageOut, "A message in one of the connection's rooms."),
    events.MESSAGE_UPDATED: (MessageOut, "A message was edited."),
    events.MESSAGE_DELETED: (MessageOut, "A message was deleted (content emptied)."),
    events.ROOM_MEMBER_JOINED: (p.RoomMember, "A user joined a room (the user: subscribed)."),
    events.ROOM_MEMBER_LEFT: (p.RoomMember, "A user left a room (the user: unsubscribed)."),
    events.ROOM_DEACTIVATED: (p.RoomDeactivated, "The room was inactive for its type's period."),
    events.ROOM_REACTIVATED: (p.RoomEvent, "A message reactivated the room."),
    events.TYPING: (p.RoomMember, "A member is typing (at most one a second per member)."),
    events.READ: (p.ReadEvent, "A member read the room up to `seq`."),
    events.PRESENCE: (p.PresenceEvent, "A member came online or went offline."),
    events.NOTIFICATION: (p.NotificationEvent, "A websocket-channel notification."),
    events.NOTIFICATION_COUNT: (InboxCount, "The user's inbox counts after a change."),
    events.DELIVERY_EXHAUSTED: (
        DeliveryExhaustedData,
        "Master-key connections: a delivery failed its last attempt.",
    ),
    events.ENDPOINT_DISABLED: (
        EndpointDisabledData,
        "Master-key connections: the service disabled a webhook endpoint.",
    ),
}

# Client → server: event -> (data model, acknowledgement model, summary).
CLIENT_EVENTS: dict[str, tuple[type[BaseModel], type[BaseModel], str]] = {
    "message.send": (p.MessageSend, MessageOut, "Send a message (as POST …/messages)."),
    "typing": (p.RoomRef, p.TypingAck, "Tell the room's other members you are typing."),
    "read": (p.ReadRequest, p.ReadEvent, "Mark the room read up to `seq`."),
    "sync": (p.SyncRequest, p.SyncResult, "Messages after `after_seq`: catch up."),
    "ping": (p.Empty, p.Empty, "Keepalive; answered with `pong`."),
    "subscribe": (p.RoomRef, p.Subscription, "Master key: hear a room's events."),
    "unsubscribe": (p.RoomRef, p.Subscription, "Master key: stop hearing a room."),
}

_SOCKETIO_ONLY: dict[str, tuple[type[BaseModel], str]] = {
    "pong": (p.Empty, "Sent after an acknowledged `ping`."),
    "disconnect_reason": (p.DisconnectReason, "Why the server is closing the session."),
}

_WEBSOCKET_DESCRIPTION = (
    'Plain WebSocket. Every frame is a JSON text frame `{"event", "data"}`; a client event '
    'may carry an `id`, which its reply repeats: `{"event": "ack", "id", "for", '
    '"data"}`, `{"event": "error", "id", "for", "data": <problem>}`, or for `ping` '
    '`{"event": "pong", "id", "data": {}}`. A refused key is accepted and then closed '
    "with 4401 (4429 when rate limited); 4403 closes a revoked or expired key's socket, 4408 "
    "a client not reading fast enough, 1009 a frame over MAX_WS_FRAME_BYTES."
)
_SOCKETIO_DESCRIPTION = (
    "Socket.IO (protocol v5, Engine.IO 4) at path `/sockets`, default namespace; connect "
    'with `auth={"api_key": "<key>"}` (or the query/headers below), or with a connect '
    'token (`POST /auth/connect-token`, single use): `auth={"token": "<token>"}`. An event\'s name is '
    "the Socket.IO event; client events are acknowledged through Socket.IO's callback with "
    'the result, or `{"error": <problem>}`.'
)


def _schemas() -> tuple[dict[str, Any], dict[tuple[type[BaseModel], str], Any]]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "serialization") for model, _ in SERVER_EVENTS.values()
    ]
    models += [(model, "serialization") for model, _ in _SOCKETIO_ONLY.values()]
    models += [(ack, "serialization") for _, ack, _ in CLIENT_EVENTS.values()]
    models += [(model, "validation") for model, _, _ in CLIENT_EVENTS.values()]
    models.append((p.SocketProblem, "serialization"))
    keys, top = models_json_schema(models, ref_template=REF + "{model}")
    refs: dict[tuple[type[BaseModel], str], Any] = {}
    for (model, mode), schema in keys.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            refs[(model, mode)] = schema
    return top.get("$defs", {}), refs


def _frame(event: Any, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    properties = {"event": event, "data": data, **extra}
    return {"type": "object", "required": ["event", "data"], "properties": properties}


def _event_messages(refs: dict[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    """The components' messages, keyed `<transport>.<server|client|ack|error>.<event>`."""
    messages: dict[str, Any] = {}
    frame_id = {"description": "Any JSON value the client chose; repeated in the reply."}
    problem = refs[(p.SocketProblem, "serialization")]
    for transport in ("websocket", "socketio"):
        for name, (model, summary) in [*SERVER_EVENTS.items(), *_SOCKETIO_ONLY.items()]:
            if transport == "websocket" and name in _SOCKETIO_ONLY:
                continue
            data = refs[(model, "serialization")]
            payload = _frame({"const": name}, data) if transport == "websocket" else data
            messages[f"{transport}.server.{name}"] = {
                "name": name,
                "summary": summary,
                "payload": payload,
            }
        for name, (model, ack, summary) in CLIENT_EVENTS.items():
            data, reply = refs[(model, "validation")], refs[(ack, "serialization")]
            if transport == "websocket":
                sent = _frame({"const": name}, data, id=frame_id)
                if name == "ping":
                    reply = _frame({"const": "pong"}, reply, id=frame_id)
                else:
                    reply = _frame({"const": "ack"}, reply, id=frame_id, **{"for": {"const": name}})
                refused = _frame({"const": "error"}, problem, id=frame_id, **{"for": {}})
            else:
                sent = data
                if name == "ping":
                    reply = {"const": "pong"}
                refused = {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": problem},
                }
            messages[f"{transport}.client.{name}"] = {
                "name": name,
                "summary": summary,
                "payload": sent,
            }
            messages[f"{transport}.ack.{name}"] = {
                "name": f"{name} acknowledgement",
                "payload": reply,
            }
            messages[f"{transport}.error.{name}"] = {
                "name": f"{name} refusal",
                "summary": "The event was refused (bad data, scope, rate limit, not found).",
                "payload": refused,
            }
    return messages


@cache
def _document_body(version: str) -> dict[str, Any]:
    """Everything but the servers (which name the host the document was asked from)."""
    defs, refs = _schemas()
    messages = _event_messages(refs)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for transport, address, description in (
        ("websocket", "/api/v1/websocket/open", _WEBSOCKET_DESCRIPTION),
        ("socketio", "/sockets", _SOCKETIO_DESCRIPTION),
    ):
        mine = {
            key.removeprefix(f"{transport}."): {"$ref": f"#/components/messages/{key}"}
            for key in messages
            if key.startswith(f"{transport}.")
        }
        channel_ref = f"#/channels/{transport}"
        channels[transport] = {
            "address": address,
            "title": transport,
            "description": description,
            "servers": [{"$ref": f"#/servers/{transport}"}],
            "messages": mine,
        }
        for key in mine:
            kind, name = key.split(".", 1)
            if kind == "server":
                operations[f"{transport}.send.{name}"] = {
                    "action": "send",
                    "channel": {"$ref": channel_ref},
                    "summary": messages[f"{transport}.{key}"]["summary"],
                    "messages": [{"$ref": f"{channel_ref}/messages/{key}"}],
                }
            elif kind == "client":
                operations[f"{transport}.receive.{name}"] = {
                    "action": "receive",
                    "channel": {"$ref": channel_ref},
                    "summary": messages[f"{transport}.{key}"]["summary"],
                    "messages": [{"$ref": f"{channel_ref}/messages/{key}"}],
                    "reply": {
                        "channel": {"$ref": channel_ref},
                        "messages": [
                            {"$ref": f"{channel_ref}/messages/ack.{name}"},
                            {"$ref": f"{channel_ref}/messages/error.{name}"},
                        ],
                    },
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ChatAPI real-time events",
            "version": version,
            "description": "The events of ChatAPI's two socket transports, which carry the "
            "same events. A connection is one key: a user key hears its user's rooms and "
            "notifications; a master key hears the tenant's operational events and the rooms "
            "it subscribes to. The REST API is described at /api/v1/openapi.json.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": defs,
            "messages": messages,
            "securitySchemes": {
                "apiKeyQuery": {"type": "httpApiKey", "name": "api_key", "in": "query"},
                "connectTokenQuery": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "A single-use connect token from POST /auth/connect-token.",
                },
                "apiKeyHeader": {"type": "httpApiKey", "name": "X-API-Key", "in": "header"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def asyncapi_document(host: str, secure: bool, version: str) -> dict[str, Any]:
    """The document, its servers at `host` (ws:// or, when `secure`, wss://)."""
    security = [
        {"$ref": "#/components/securitySchemes/apiKeyQuery"},
        {"$ref": "#/components/securitySchemes/connectTokenQuery"},
        {"$ref": "#/components/securitySchemes/apiKeyHeader"},
        {"$ref": "#/components/securitySchemes/bearer"},
    ]
    protocol = "wss" if secure else "ws"
    servers = {
        "websocket": {
            "host": host,
            "pathname": "/api/v1/websocket/open",
            "protocol": protocol,
            "security": security,
        },
        "socketio": {
            "host": host,
            "pathname": "/sockets",
            "protocol": protocol,
            "description": 'Socket.IO\'s Engine.IO endpoint (`socketio_path="sockets"`).',
            "security": security,
        },
    }
    return {**_document_body(version), "servers": servers}


def install_asyncapi(app: FastAPI) -> None:
    """Serve the document at ASYNCAPI_PATH, outside the OpenAPI document, without a key."""

    async def asyncapi(request: Request) -> JSONResponse:
        secure = request.url.scheme in ("https", "wss")
        return JSONResponse(asyncapi_document(request.url.netloc, secure, app.version))

    app.add_route(ASYNCAPI_PATH, asyncapi, include_in_schema=False)
