"""Messages: gapless seq, idempotent sends, paging, edit, soft delete, read markers."""

from __future__ import annotations

import asyncio

from app.main import create_app
from app.realtime.events import room_target
from tests.conftest import app_client, make_settings
from tests.support.api import Api, bearer


async def _room_with_user(api: Api):  # type: ignore[no-untyped-def]
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    room = await api.room(tenant, member_ids=[user["id"]])
    return tenant, user, key, room


async def test_messages_are_numbered_1_2_3_and_published(api: Api) -> None:
    tenant, user, key, room = await _room_with_user(api)
    events = await api.capture(tenant, room_target(room["id"]))
    sent = [await api.send(tenant, room["id"], f"m{i}", key) for i in range(3)]
    assert [r.status_code for r in sent] == [201] * 3
    bodies = [r.json() for r in sent]
    assert [b["seq"] for b in bodies] == [1, 2, 3]
    assert bodies[0]["sender_id"] == user["id"]
    assert set(bodies[0]) == {
        "id",
        "room_id",
        "seq",
        "sender_id",
        "content",
        "content_type",
        "metadata",
        "client_message_id",
        "created_at",
        "edited_at",
        "deleted_at",
    }
    assert [(e.event, e.data) for e in events] == [("message.created", b) for b in bodies]


async def test_same_client_message_id_returns_the_first_message(api: Api) -> None:
    tenant, _, key, room = await _room_with_user(api)
    first = await api.send(tenant, room["id"], "hello", key, client_message_id="c-1")
    again = await api.send(tenant, room["id"], "hello again", key, client_message_id="c-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    nxt = await api.send(tenant, room["id"], "next", key)
    assert nxt.json()["seq"] == 2


async def test_paging_newest_first_before_and_after_seq(api: Api) -> None:
    tenant, _, key, room = await _room_with_user(api)
    for i in range(5):
        await api.send(tenant, room["id"], f"m{i + 1}", key)
    url = f"/api/v1/rooms/{room['id']}/messages"
    newest = (await api.http.get(url, params={"limit": 2}, headers=bearer(key))).json()
    assert [m["seq"] for m in newest["data"]] == [5, 4] and newest["has_more"]
    older = (
        await api.http.get(url, params={"limit": 2, "before_seq": 4}, headers=bearer(key))
    ).json()
    assert [m["seq"] for m in older["data"]] == [3, 2] and older["has_more"]
    last = (
        await api.http.get(url, params={"limit": 5, "before_seq": 2}, headers=bearer(key))
    ).json()
    assert [m["seq"] for m in last["data"]] == [1] and not last["has_more"]
    after = (await api.http.get(url, params={"after_seq": 2}, headers=bearer(key))).json()
    assert [m["seq"] for m in after["data"]] == [3, 4, 5] and not after["has_more"]


async def test_edit_by_sender_or_master_and_not_by_others(api: Api) -> None:
    tenant, _user, key, room = await _room_with_user(api)
    other = await api.user(tenant)
    await api.http.post(
        f"/api/v1/rooms/{room['id']}/members", json={"user_ids": [other["id"]]}, headers=tenant.auth
    )
    other_key = await api.login(tenant, other["id"])
    message = (await api.send(tenant, room["id"], "draft", key)).json()
    events = await api.capture(tenant, room_target(room["id"]))
    url = f"/api/v1/rooms/{room['id']}/messages/{message['id']}"
    edited = await api.http.patch(url, json={"content": "final"}, headers=bearer(key))
    assert edited.status_code == 200
    assert edited.json()["content"] == "final" and edited.json()["edited_at"] is not None
    assert (
        await api.http.patch(url, json={"content": "hijack"}, headers=bearer(other_key))
    ).status_code == 403
    assert (
        await api.http.patch(url, json={"content": "mod"}, headers=tenant.auth)
    ).status_code == 200
    assert [e.event for e in events] == ["message.updated", "message.updated"]
    assert events[0].data["content"] == "final"


async def test_soft_delete_keeps_seq_and_removes_content(api: Api) -> None:
    tenant, _, key, room = await _room_with_user(api)
    message = (await api.send(tenant, room["id"], "secret", key, metadata={"a": 1})).json()
    events = await api.capture(tenant, room_target(room["id"]))
    url = f"/api/v1/rooms/{room['id']}/messages/{message['id']}"
    deleted = await api.http.delete(url, headers=bearer(key))
    assert deleted.status_code == 200
    body = deleted.json()
    assert body["deleted_at"] is not None and body["content"] == "" and body["seq"] == 1
    listed = (
        await api.http.get(f"/api/v1/rooms/{room['id']}/messages", headers=bearer(key))
    ).json()
    assert listed["data"][0]["content"] == "" and "secret" not in str(listed)
    assert [e.event for e in events] == ["message.deleted"]
    assert (
        await api.http.patch(url, json={"content": "back"}, headers=bearer(key))
    ).status_code == 409


async def test_oversize_message_is_413_and_stores_nothing(db_url: str) -> None:
    app = create_app(make_settings(db_url, MAX_MESSAGE_BYTES=100), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant, _, key, room = await _room_with_user(api)
        r = await api.send(tenant, room["id"], "é" * 51, key)  # 102 bytes
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        ok = await api.send(tenant, room["id"], "x" * 100, key)
        assert ok.status_code == 201 and ok.json()["seq"] == 1


async def test_empty_or_malformed_messages_are_422(api: Api) -> None:
    _tenant, _, key, room = await _room_with_user(api)
    for body in ({"content": ""}, {}, {"content": 5}, {"content": "x", "sender_id": "forged"}):
        r = await api.http.post(
            f"/api/v1/rooms/{room['id']}/messages", json=body, headers=bearer(key)
        )
        assert r.status_code == 422, body


async def test_read_marker_moves_forward_only_and_drives_unread_count(api: Api) -> None:
    tenant, user, key, room = await _room_with_user(api)
    for i in range(4):
        await api.send(tenant, room["id"], f"from master {i}")
    listing = (await api.http.get("/api/v1/rooms", headers=bearer(key))).json()["data"]
    assert listing[0]["unread_count"] == 4
    events = await api.capture(tenant, room_target(room["id"]))
    url = f"/api/v1/rooms/{room['id']}/read"
    assert (await api.http.post(url, json={"seq": 3}, headers=bearer(key))).json()["seq"] == 3
    assert (await api.http.post(url, json={"seq": 1}, headers=bearer(key))).json()["seq"] == 3
    assert (await api.http.post(url, json={"seq": 99}, headers=bearer(key))).json()["seq"] == 4
    assert [(e.event, e.data["seq"]) for e in events] == [("read", 3), ("read", 4)]
    assert events[0].data == {"room_id": room["id"], "user_id": user["id"], "seq": 3}
    got = (await api.http.get(f"/api/v1/rooms/{room['id']}", headers=bearer(key))).json()
    assert got["unread_count"] == 0
    await api.send(tenant, room["id"], "mine", key)
    got = (await api.http.get(f"/api/v1/rooms/{room['id']}", headers=bearer(key))).json()
    assert got["unread_count"] == 0, "a sender has read its own message"
    assert (await api.http.post(url, json={"seq": 1}, headers=tenant.auth)).status_code == 422


async def test_concurrent_senders_get_gapless_unique_seqs(api: Api) -> None:
    tenant, _, key, room = await _room_with_user(api)
    responses = await asyncio.gather(
        *[api.send(tenant, room["id"], f"c{i}", key if i % 2 else None) for i in range(30)]
    )
    assert all(r.status_code == 201 for r in responses)
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 31))


async def test_concurrent_repeats_of_one_client_message_id_store_one_message(api: Api) -> None:
    tenant, _, key, room = await _room_with_user(api)
    responses = await asyncio.gather(
        *[api.send(tenant, room["id"], "once", key, client_message_id="dup") for _ in range(10)]
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    nxt = await api.send(tenant, room["id"], "next", key)
    assert nxt.json()["seq"] == 2


async def test_a_nul_character_in_a_message_is_422_on_both_databases(api: Api) -> None:
    _, _, key, room = await _room_with_user(api)
    url = f"/api/v1/rooms/{room['id']}/messages"
    for body in (
        {"content": "a\u0000b"},
        {"content": "ok", "content_type": "text/\u0000plain"},
        {"content": "ok", "client_message_id": "c\u0000"},
    ):
        response = await api.http.post(url, json=body, headers=bearer(key))
        assert response.status_code == 422, (body, response.text)
    stored = await api.http.get(url, headers=bearer(key))
    assert stored.json()["data"] == []
