"""`/asyncapi.json`: an AsyncAPI 3.0.0 document of both socket transports, valid against the
official schema (tests/realtime/asyncapi/), naming every event of app/realtime/events.py, and
describing what a real server sends: live frames of both transports are validated against it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from app.main import create_app
from app.realtime import events
from tests.conftest import ADMIN_KEY, app_client, make_settings
from tests.support.api import bearer
from tests.support.realtime import Scene, SioClient, WsClient, make_scene, serving, wait_for
from tests.support.schemas import errors

SCHEMA = Path(__file__).parent / "asyncapi" / "3.0.0.json"
TRANSPORTS = ("websocket", "socketio")
SERVER_EVENTS = sorted(
    value
    for name, value in vars(events).items()
    if name.isupper() and isinstance(value, str) and name != "CLIENT_EVENTS"
)


@pytest.fixture(scope="module")
async def doc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('asyncapi') / 'a.db'}"
    app = create_app(make_settings(url), run_embedded_worker=False)
    async for http in app_client(app):
        response = await http.get("/asyncapi.json")  # no key, like openapi.json
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        yield dict(response.json())


def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    problems = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert problems == []
    assert doc["servers"]["websocket"]["host"] == "testserver"


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable {ref}"
        node = node[part]
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return _resolve(doc, node["$ref"])  # a channel's message refers to a component
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert len(refs) > 50
    for ref in refs:
        _resolve(doc, ref)
    # An operation's messages (and its reply's) are messages of its own channel.
    for name, op in doc["operations"].items():
        channel = op["channel"]["$ref"]
        for message in op["messages"] + op.get("reply", {}).get("messages", []):
            assert message["$ref"].startswith(channel + "/messages/"), name


def _names(doc: dict[str, Any], transport: str, action: str) -> set[str]:
    names = set()
    for op in doc["operations"].values():
        if op["action"] == action and op["channel"]["$ref"] == f"#/channels/{transport}":
            for message in op["messages"]:
                names.add(_resolve(doc, message["$ref"])["name"])
    return names


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_event_of_both_directions_is_documented(doc: dict[str, Any], transport: str) -> None:
    # The server sends: every event name of app/realtime/events.py.
    assert set(SERVER_EVENTS) <= _names(doc, transport, "send")
    # The server receives: every client event both gateways handle.
    assert set(events.CLIENT_EVENTS) == _names(doc, transport, "receive")


# --- live traffic against the document --------------------------------------------------


def _payload(doc: dict[str, Any], transport: str, action: str, name: str) -> dict[str, Any]:
    for op in doc["operations"].values():
        if op["action"] == action and op["channel"]["$ref"] == f"#/channels/{transport}":
            for message in op["messages"]:
                found = _resolve(doc, message["$ref"])
                if found["name"] == name:
                    return dict(found["payload"])
    raise AssertionError(f"{transport}: no {action} message {name}")


def _reply(doc: dict[str, Any], transport: str, name: str) -> list[dict[str, Any]]:
    for op in doc["operations"].values():
        if op["action"] == "receive" and op["channel"]["$ref"] == f"#/channels/{transport}":
            first = _resolve(doc, op["messages"][0]["$ref"])
            if first["name"] == name:
                return [_resolve(doc, m["$ref"])["payload"] for m in op["reply"]["messages"]]
    raise AssertionError(f"{transport}: no reply of {name}")


def _matches_one(doc: dict[str, Any], payloads: list[dict[str, Any]], value: Any) -> bool:
    return any(errors(doc, payload, value) == [] for payload in payloads)


@pytest.fixture
async def live(sqlite_url: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=True)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        yield base, dict((await http.get("/asyncapi.json")).json())


async def _traffic(base: str, scene: Scene, http: httpx.AsyncClient, ws: WsClient) -> None:
    """Make the server send each kind of event to user 0 (connected as `ws`)."""
    room = scene.room["id"]
    user1 = scene.users[1]["id"]
    sent = await http.post(
        f"/api/v1/rooms/{room}/messages", json={"content": "hi"}, headers=bearer(scene.keys[1])
    )
    message = sent.json()["id"]
    await http.patch(
        f"/api/v1/rooms/{room}/messages/{message}",
        json={"content": "hello"},
        headers=bearer(scene.keys[1]),
    )
    await http.delete(f"/api/v1/rooms/{room}/messages/{message}", headers=bearer(scene.keys[1]))
    # Seq 2, from the master key: user 1 has not read it yet.
    await http.post(
        f"/api/v1/rooms/{room}/messages", json={"content": "news"}, headers=scene.master_auth
    )
    other = await SioClient.open(base, scene.keys[1])  # presence online
    await other.sio.call("typing", {"room_id": room})
    await other.sio.call("read", {"room_id": room, "seq": 2})
    await other.close()  # presence offline
    await http.delete(f"/api/v1/rooms/{room}/members/{user1}", headers=scene.master_auth)
    await http.post(
        f"/api/v1/rooms/{room}/members", json={"user_ids": [user1]}, headers=scene.master_auth
    )
    await http.post(
        "/api/v1/notifications/send",
        json={
            "channels": ["websocket"],
            "recipients": [{"user_id": scene.users[0]["id"]}],
            "websocket": {"event": "order.shipped", "data": {"order": "o_1"}},
        },
        headers=scene.master_auth,
    )
    item = await wait_for(ws.events, lambda e: e[0] == events.NOTIFICATION, timeout=15)
    await http.post(
        f"/api/v1/me/notifications/{item[1]['inbox_id']}/read", headers=bearer(scene.keys[0])
    )


LIVE_EVENTS = {
    events.CONNECTED,
    events.MESSAGE_CREATED,
    events.MESSAGE_UPDATED,
    events.MESSAGE_DELETED,
    events.PRESENCE,
    events.TYPING,
    events.READ,
    events.ROOM_MEMBER_LEFT,
    events.ROOM_MEMBER_JOINED,
    events.NOTIFICATION,
    events.NOTIFICATION_COUNT,
}


async def test_websocket_frames_match_the_document(live: tuple[str, dict[str, Any]]) -> None:
    base, doc = live
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        scene = await make_scene(http, base, ADMIN_KEY)
        ws = await WsClient.open(base, scene.keys[0])
        try:
            await _traffic(base, scene, http, ws)
            await wait_for(ws.events, lambda e: e[0] == events.NOTIFICATION_COUNT, timeout=15)
            room = scene.room["id"]
            replies = {
                "message.send": {"room_id": room, "content": "over the socket"},
                "typing": {"room_id": room},
                "read": {"room_id": room, "seq": 1},
                "sync": {"room_id": room, "after_seq": 0},
                "ping": {},
                "subscribe": {"room_id": room},  # a user key may not: an error frame
            }
            answers = {event: await ws.request(event, data) for event, data in replies.items()}
        finally:
            await ws.close()
    seen = {frame["event"] for frame in ws.frames if "id" not in frame}
    assert seen >= LIVE_EVENTS, LIVE_EVENTS - seen
    for frame in ws.frames:
        if "id" in frame:
            continue  # a reply, checked below
        payload = _payload(doc, "websocket", "send", frame["event"])
        assert errors(doc, payload, frame) == [], frame
    assert answers["subscribe"]["event"] == "error"
    for event, frame in answers.items():
        assert _matches_one(doc, _reply(doc, "websocket", event), frame), frame
        assert errors(doc, _payload(doc, "websocket", "receive", event), _sent(event)) == []


def _sent(event: str) -> dict[str, Any]:
    # A client frame as WsClient.request sends it, with valid data for the event.
    data: dict[str, Any] = {
        "message.send": {"room_id": "r1", "content": "x"},
        "read": {"room_id": "r1", "seq": 1},
        "sync": {"room_id": "r1", "after_seq": 0},
        "ping": {},
    }.get(event, {"room_id": "r1"})
    return {"event": event, "data": data, "id": 1}


async def test_socketio_events_match_the_document(live: tuple[str, dict[str, Any]]) -> None:
    base, doc = live
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        scene = await make_scene(http, base, ADMIN_KEY)
        sio = await SioClient.open(base, scene.keys[0])
        ws = await WsClient.open(base, scene.keys[0])  # for _traffic's notification id
        try:
            await _traffic(base, scene, http, ws)
            await wait_for(sio.events, lambda e: e[0] == events.NOTIFICATION_COUNT, timeout=15)
            room = scene.room["id"]
            acks = {
                "message.send": await sio.sio.call(
                    "message.send", {"room_id": room, "content": "x"}
                ),
                "sync": await sio.sio.call("sync", {"room_id": room, "after_seq": 0}),
                "ping": await sio.sio.call("ping", {}),
                "subscribe": await sio.sio.call("subscribe", {"room_id": room}),
            }
        finally:
            await ws.close()
            await sio.close()
    seen = {event for event, _ in sio.events}
    assert seen >= LIVE_EVENTS, LIVE_EVENTS - seen
    for event, data in sio.events:
        assert errors(doc, _payload(doc, "socketio", "send", event), data) == [], (event, data)
    assert "error" in acks["subscribe"]
    for event, ack in acks.items():
        assert _matches_one(doc, _reply(doc, "socketio", event), ack), (event, ack)
