"""Members have their own paged listing; a room lists member ids only while it is small."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.api import Api, bearer

SMALL = 3  # ROOM_MEMBER_IDS_MAX for these tests


@pytest.fixture
async def small_api(db_url: str) -> AsyncIterator[Api]:
    """The API with rooms of more than SMALL members counting as large."""
    app = create_app(make_settings(db_url, ROOM_MEMBER_IDS_MAX=SMALL), run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


async def _all_pages(api: Api, path: str, headers: dict[str, str], limit: int) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await api.http.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) <= limit
        items += body["data"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return items
        cursor = body["next_cursor"]


async def test_members_are_listed_in_cursor_pages(api: Api) -> None:
    tenant = await api.tenant()
    users = [await api.user(tenant) for _ in range(5)]
    creator_key = await api.login(tenant, users[0]["id"])
    room = await api.room(tenant, creator_key, member_ids=[u["id"] for u in users[1:]])
    await api.send(tenant, room["id"], "hello", key=creator_key)
    path = f"/api/v1/rooms/{room['id']}/members"
    members = await _all_pages(api, path, tenant.auth, limit=2)
    assert sorted(m["user_id"] for m in members) == sorted(u["id"] for u in users)
    assert len(members) == 5  # no repeats across pages
    by_id = {m["user_id"]: m for m in members}
    assert by_id[users[0]["id"]]["role"] == "owner"
    assert by_id[users[0]["id"]]["read_seq"] == 1  # the sender has read its own message
    assert {by_id[u["id"]]["role"] for u in users[1:]} == {"member"}
    assert {by_id[u["id"]]["read_seq"] for u in users[1:]} == {0}
    assert all(set(m) == {"user_id", "role", "joined_at", "read_seq"} for m in members)
    # A member may list them too.
    assert await _all_pages(api, path, bearer(creator_key), limit=50) == members


async def test_members_listing_is_404_for_non_members_and_other_tenants(api: Api) -> None:
    tenant, intruder = await api.tenant(), await api.tenant()
    member, outsider = await api.user(tenant), await api.user(tenant)
    room = await api.room(tenant, member_ids=[member["id"]])
    path = f"/api/v1/rooms/{room['id']}/members"
    outsider_key = await api.login(tenant, outsider["id"])
    intruder_user = await api.user(intruder)
    intruder_key = await api.login(intruder, intruder_user["id"])
    for headers in (bearer(outsider_key), intruder.auth, bearer(intruder_key)):
        r = await api.http.get(path, headers=headers)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == "application/problem+json"
    assert (await api.http.get(path, headers=tenant.auth)).status_code == 200


async def test_member_ids_are_given_only_while_the_room_is_small(small_api: Api) -> None:
    api = small_api
    tenant = await api.tenant()
    users = [await api.user(tenant) for _ in range(SMALL + 2)]
    small = await api.room(tenant, member_ids=[u["id"] for u in users[:SMALL]])
    assert small["member_ids"] == [u["id"] for u in users[:SMALL]]
    assert small["member_count"] == SMALL
    big = await api.room(tenant, member_ids=[u["id"] for u in users[: SMALL + 1]])
    assert big["member_ids"] is None and big["member_count"] == SMALL + 1

    added = await api.http.post(
        f"/api/v1/rooms/{small['id']}/members",
        json={"user_ids": [users[SMALL]["id"]]},
        headers=tenant.auth,
    )
    assert added.status_code == 200
    assert added.json()["member_ids"] is None and added.json()["member_count"] == SMALL + 1
    room_path = f"/api/v1/rooms/{small['id']}"
    for r in (
        await api.http.get(room_path, headers=tenant.auth),
        await api.http.patch(room_path, json={"name": "renamed"}, headers=tenant.auth),
    ):
        assert r.status_code == 200
        assert r.json()["member_ids"] is None and r.json()["member_count"] == SMALL + 1
    listed = (await api.http.get("/api/v1/rooms", headers=tenant.auth)).json()["data"]
    assert {(r["id"], r["member_ids"] is None, r["member_count"]) for r in listed} == {
        (small["id"], True, SMALL + 1),
        (big["id"], True, SMALL + 1),
    }

    removed = await api.http.delete(
        f"/api/v1/rooms/{small['id']}/members/{users[0]['id']}", headers=tenant.auth
    )
    assert removed.status_code == 204
    again = (await api.http.get(room_path, headers=tenant.auth)).json()
    assert again["member_ids"] == [u["id"] for u in users[1 : SMALL + 1]]
    assert again["member_count"] == SMALL
