"""Rooms: types, direct uniqueness, members, listings, access and their events."""

from __future__ import annotations

from app.realtime.events import room_target, user_target
from tests.support.api import Api, bearer


async def test_master_creates_a_group_room_with_members(api: Api) -> None:
    tenant = await api.tenant()
    a, b = await api.user(tenant), await api.user(tenant)
    r = await api.http.post(
        "/api/v1/rooms",
        json={
            "name": "Team",
            "type": "group",
            "member_ids": [a["id"], b["id"]],
            "metadata": {"k": 1},
        },
        headers=tenant.auth,
    )
    assert r.status_code == 201
    room = r.json()
    assert room["member_ids"] == [a["id"], b["id"]]
    assert room["is_active"] is True and room["deactivated_at"] is None
    assert room["type"] == "group" and room["metadata"] == {"k": 1}
    assert set(room) >= {
        "id",
        "name",
        "type",
        "is_active",
        "last_activity_at",
        "deactivated_at",
        "member_ids",
        "metadata",
        "created_at",
    }


async def test_a_user_key_joins_the_room_it_creates(api: Api) -> None:
    tenant = await api.tenant()
    a, b = await api.user(tenant), await api.user(tenant)
    key = await api.login(tenant, a["id"])
    room = await api.room(tenant, key, type="support", member_ids=[b["id"]])
    assert set(room["member_ids"]) == {a["id"], b["id"]}


async def test_direct_room_is_unique_per_pair(api: Api) -> None:
    tenant = await api.tenant()
    a, b = await api.user(tenant), await api.user(tenant)
    first = await api.http.post(
        "/api/v1/rooms",
        json={"type": "direct", "member_ids": [a["id"], b["id"]]},
        headers=tenant.auth,
    )
    assert first.status_code == 201
    key_b = await api.login(tenant, b["id"])
    again = await api.http.post(
        "/api/v1/rooms", json={"type": "direct", "member_ids": [a["id"]]}, headers=bearer(key_b)
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


async def test_direct_room_needs_exactly_two_members(api: Api) -> None:
    tenant = await api.tenant()
    users = [await api.user(tenant) for _ in range(3)]
    for members in ([users[0]["id"]], [u["id"] for u in users]):
        r = await api.http.post(
            "/api/v1/rooms", json={"type": "direct", "member_ids": members}, headers=tenant.auth
        )
        assert r.status_code == 422, members
        assert r.headers["content-type"] == "application/problem+json"


async def test_unknown_or_foreign_members_are_refused(api: Api) -> None:
    tenant, other = await api.tenant(), await api.tenant()
    stranger = await api.user(other)
    for member_ids in (["nope"], [stranger["id"]]):
        r = await api.http.post(
            "/api/v1/rooms", json={"member_ids": member_ids}, headers=tenant.auth
        )
        assert r.status_code == 422


async def test_member_limit_is_configurable(api: Api) -> None:
    tenant = await api.tenant()
    await api.http.patch("/api/v1/clients/me", json={"max_room_members": 2}, headers=tenant.auth)
    users = [await api.user(tenant) for _ in range(3)]
    r = await api.http.post(
        "/api/v1/rooms", json={"member_ids": [u["id"] for u in users]}, headers=tenant.auth
    )
    assert r.status_code == 422
    room = await api.room(tenant, member_ids=[users[0]["id"], users[1]["id"]])
    more = await api.http.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_ids": [users[2]["id"]]},
        headers=tenant.auth,
    )
    assert more.status_code == 422


async def test_invalid_room_input_is_422(api: Api) -> None:
    tenant = await api.tenant()
    for body in (
        {"type": "lobby"},
        {"name": ""},
        {"name": "x" * 201},
        {"extra": 1},
        {"metadata": {str(i): i for i in range(51)}},
    ):
        r = await api.http.post("/api/v1/rooms", json=body, headers=tenant.auth)
        assert r.status_code == 422, body


async def test_user_lists_its_rooms_and_master_lists_all(api: Api) -> None:
    tenant = await api.tenant()
    a, b = await api.user(tenant), await api.user(tenant)
    key_a = await api.login(tenant, a["id"])
    mine = await api.room(tenant, member_ids=[a["id"], b["id"]], type="group")
    await api.room(tenant, member_ids=[b["id"]], type="channel")
    listed = (await api.http.get("/api/v1/rooms", headers=bearer(key_a))).json()
    assert [r["id"] for r in listed["data"]] == [mine["id"]]
    assert listed["data"][0]["unread_count"] == 0
    every = (await api.http.get("/api/v1/rooms", headers=tenant.auth)).json()["data"]
    assert len(every) == 2 and all(r["unread_count"] is None for r in every)
    admin = (await api.http.get("/api/v1/rooms/all?type=channel", headers=tenant.auth)).json()
    assert [r["type"] for r in admin["data"]] == ["channel"]
    assert (await api.http.get("/api/v1/rooms/all", headers=bearer(key_a))).status_code == 403


async def test_room_listing_pages_and_filters(api: Api) -> None:
    tenant = await api.tenant()
    made = [(await api.room(tenant, name=f"r{i}"))["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.http.get("/api/v1/rooms/all", params=params, headers=tenant.auth)).json()
        seen += [r["id"] for r in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == made
    inactive = await api.http.get("/api/v1/rooms?is_active=false", headers=tenant.auth)
    assert inactive.json()["data"] == []


async def test_non_members_get_404_and_members_can_read(api: Api) -> None:
    tenant = await api.tenant()
    a, outsider = await api.user(tenant), await api.user(tenant)
    room = await api.room(tenant, member_ids=[a["id"]])
    key_a, key_out = await api.login(tenant, a["id"]), await api.login(tenant, outsider["id"])
    assert (
        await api.http.get(f"/api/v1/rooms/{room['id']}", headers=bearer(key_a))
    ).status_code == 200
    for method, path in [
        ("GET", f"/api/v1/rooms/{room['id']}"),
        ("PATCH", f"/api/v1/rooms/{room['id']}"),
        ("DELETE", f"/api/v1/rooms/{room['id']}"),
        ("GET", f"/api/v1/rooms/{room['id']}/messages"),
        ("POST", f"/api/v1/rooms/{room['id']}/messages"),
        ("POST", f"/api/v1/rooms/{room['id']}/read"),
    ]:
        body = (
            {"content": "x"}
            if path.endswith("messages")
            else ({"seq": 1} if path.endswith("read") else {})
        )
        r = await api.http.request(method, path, headers=bearer(key_out), json=body)
        assert r.status_code == 404, (method, path, r.status_code)


async def test_patch_and_delete_room(api: Api) -> None:
    tenant = await api.tenant()
    room = await api.room(tenant, name="old")
    r = await api.http.patch(
        f"/api/v1/rooms/{room['id']}",
        json={"name": "new", "metadata": {"a": 1}},
        headers=tenant.auth,
    )
    assert r.json()["name"] == "new" and r.json()["metadata"] == {"a": 1}
    assert (
        await api.http.delete(f"/api/v1/rooms/{room['id']}", headers=tenant.auth)
    ).status_code == 204
    assert (
        await api.http.get(f"/api/v1/rooms/{room['id']}", headers=tenant.auth)
    ).status_code == 404


async def test_members_join_and_leave_with_events(api: Api) -> None:
    tenant = await api.tenant()
    a, b = await api.user(tenant), await api.user(tenant)
    room = await api.room(tenant, member_ids=[a["id"]])
    room_events = await api.capture(tenant, room_target(room["id"]))
    b_events = await api.capture(tenant, user_target(b["id"]))
    added = await api.http.post(
        f"/api/v1/rooms/{room['id']}/members", json={"user_ids": [b["id"]]}, headers=tenant.auth
    )
    assert added.status_code == 200
    assert added.json()["member_ids"] == [a["id"], b["id"]]
    removed = await api.http.delete(
        f"/api/v1/rooms/{room['id']}/members/{b['id']}", headers=tenant.auth
    )
    assert removed.status_code == 204
    expected = [
        ("room.member_joined", {"room_id": room["id"], "user_id": b["id"]}),
        ("room.member_left", {"room_id": room["id"], "user_id": b["id"]}),
    ]
    assert [(e.event, e.data) for e in room_events] == expected
    assert [(e.event, e.data) for e in b_events] == expected
    again = await api.http.delete(
        f"/api/v1/rooms/{room['id']}/members/{b['id']}", headers=tenant.auth
    )
    assert again.status_code == 404


async def test_direct_room_members_cannot_change(api: Api) -> None:
    tenant = await api.tenant()
    a, b, c = (await api.user(tenant)), (await api.user(tenant)), (await api.user(tenant))
    room = await api.room(tenant, type="direct", member_ids=[a["id"], b["id"]])
    r = await api.http.post(
        f"/api/v1/rooms/{room['id']}/members", json={"user_ids": [c["id"]]}, headers=tenant.auth
    )
    assert r.status_code == 409


async def test_scopes_are_enforced_on_rooms_and_messages(api: Api) -> None:
    tenant = await api.tenant()
    a = await api.user(tenant)
    room = await api.room(tenant, member_ids=[a["id"]])
    reader = await api.login(tenant, a["id"], scopes=["rooms:read"])
    assert (await api.http.get("/api/v1/rooms", headers=bearer(reader))).status_code == 200
    denied = [
        ("POST", "/api/v1/rooms", {}),
        ("GET", f"/api/v1/rooms/{room['id']}/messages", None),
        ("POST", f"/api/v1/rooms/{room['id']}/messages", {"content": "x"}),
    ]
    for method, path, body in denied:
        r = await api.http.request(method, path, headers=bearer(reader), json=body)
        assert r.status_code == 403, (method, path)
        assert r.headers["content-type"] == "application/problem+json"
        assert "scope" in r.json()["detail"]
