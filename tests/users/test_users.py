"""Users: upsert on external_id, cursor listing, get, patch, delete revoking keys."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.api import Api


async def test_upsert_creates_then_updates_by_external_id(api: Api) -> None:
    tenant = await api.tenant()
    first = await api.http.post(
        "/api/v1/users",
        json={"external_id": "u-1", "display_name": "Ada", "email": "ada@example.com"},
        headers=tenant.auth,
    )
    assert first.status_code == 201
    again = await api.http.post(
        "/api/v1/users",
        json={"external_id": "u-1", "display_name": "Ada L.", "metadata": {"plan": "pro"}},
        headers=tenant.auth,
    )
    assert again.status_code == 200
    body = again.json()
    assert body["id"] == first.json()["id"]
    assert body["display_name"] == "Ada L."
    assert body["email"] == "ada@example.com"
    assert body["metadata"] == {"plan": "pro"}


async def test_invalid_user_input_is_422(api: Api) -> None:
    tenant = await api.tenant()
    for payload in (
        {"display_name": "no id"},
        {"external_id": "x", "email": "not-an-email"},
        {"external_id": ""},
        {"external_id": "x", "surprise": 1},
    ):
        r = await api.http.post("/api/v1/users", json=payload, headers=tenant.auth)
        assert r.status_code == 422, payload
        assert r.headers["content-type"] == "application/problem+json"


async def test_list_pages_by_cursor_without_repeats(api: Api) -> None:
    tenant = await api.tenant()
    made = [(await api.user(tenant, external_id=f"p-{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.http.get("/api/v1/users", params=params, headers=tenant.auth)).json()
        seen += [u["id"] for u in page["data"]]
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert seen == made


async def test_get_and_patch_a_user(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant, display_name="Bo")
    got = await api.http.get(f"/api/v1/users/{user['id']}", headers=tenant.auth)
    assert got.json()["display_name"] == "Bo"
    patched = await api.http.patch(
        f"/api/v1/users/{user['id']}", json={"display_name": "Bob"}, headers=tenant.auth
    )
    assert patched.status_code == 200
    assert patched.json()["display_name"] == "Bob"
    assert patched.json()["updated_at"] >= user["updated_at"]


async def test_deleting_a_user_revokes_its_keys(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    assert await api.status_with(key, "/api/v1/auth/me") == 200
    r = await api.http.delete(f"/api/v1/users/{user['id']}", headers=tenant.auth)
    assert r.status_code == 204
    assert await api.status_with(key, "/api/v1/auth/me") == 401
    missing = await api.http.get(f"/api/v1/users/{user['id']}", headers=tenant.auth)
    assert missing.status_code == 404


async def test_concurrent_upserts_of_one_external_id_make_one_user(pg_url: str) -> None:
    app = create_app(make_settings(pg_url), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http)
        tenant = await api.tenant()
        results = await asyncio.gather(
            *[
                http.post("/api/v1/users", json={"external_id": "same"}, headers=tenant.auth)
                for _ in range(10)
            ]
        )
        assert sorted(r.status_code for r in results) == [200] * 9 + [201]
        assert len({r.json()["id"] for r in results}) == 1


async def test_concurrent_logins_leave_exactly_one_live_key(pg_url: str) -> None:
    app = create_app(make_settings(pg_url), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http)
        tenant = await api.tenant()
        user = await api.user(tenant)
        responses = await asyncio.gather(
            *[
                http.post("/api/v1/auth/login", json={"user_id": user["id"]}, headers=tenant.auth)
                for _ in range(8)
            ]
        )
        assert all(r.status_code == 200 for r in responses)
        keys = [r.json()["api_key"] for r in responses]
        statuses = [await api.status_with(k, "/api/v1/auth/me") for k in keys]
        assert sorted(statuses) == [200] + [401] * 7


@pytest.mark.parametrize("concurrency", [8])
async def test_concurrent_logins_on_sqlite_also_leave_one_key(
    sqlite_url: str, concurrency: int
) -> None:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http)
        tenant = await api.tenant()
        user = await api.user(tenant)
        responses: list[httpx.Response] = await asyncio.gather(
            *[
                http.post("/api/v1/auth/login", json={"user_id": user["id"]}, headers=tenant.auth)
                for _ in range(concurrency)
            ]
        )
        keys = [r.json()["api_key"] for r in responses]
        statuses = [await api.status_with(k, "/api/v1/auth/me") for k in keys]
        assert sorted(statuses) == [200] + [401] * (concurrency - 1)
