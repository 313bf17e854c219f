"""The browser demo's backend (/demo) in process: off by default, its files, its login
(demo client, shared rooms, a scoped user key), its name lookup and its limits."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.clock import ManualClock
from app.demo.service import DEMO_SCOPES, demo_room_id
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.api import Api, bearer

PROBLEM = "application/problem+json"
LOGINS_PER_MINUTE = 5


async def demo_app(url: str) -> AsyncIterator[Api]:
    """The app with the demo on; each test has a demo client slug of its own."""
    settings = make_settings(
        url,
        DEMO_ENABLED=True,
        DEMO_CLIENT_SLUG=f"demo-{secrets.token_hex(4)}",
        DEMO_LOGINS_PER_MINUTE=LOGINS_PER_MINUTE,
    )
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


@pytest.fixture
async def demo(sqlite_url: str) -> AsyncIterator[Api]:
    """The demo on SQLite (what does not depend on the database)."""
    async for api in demo_app(sqlite_url):
        yield api


@pytest.fixture
async def demo_each_db(db_url: str) -> AsyncIterator[Api]:
    """The demo on SQLite and on PostgreSQL (the rooms' and the client's creation)."""
    async for api in demo_app(db_url):
        yield api


async def sign_in(api: Api, name: str) -> dict[str, Any]:
    response = await api.http.post("/demo/session", json={"display_name": name})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_demo_is_off_by_default_and_answers_404_problems(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async for http in app_client(app):
        for method, path in [
            ("GET", "/demo"),
            ("GET", "/demo/"),
            ("POST", "/demo/session"),
            ("GET", "/demo/static/app.js"),
            ("GET", "/demo/users?ids=x"),
        ]:
            response = await http.request(method, path)
            assert response.status_code == 404, (path, response.text)
            assert response.headers["content-type"] == PROBLEM
        paths = (await http.get("/api/v1/openapi.json")).json()["paths"]
        assert not [p for p in paths if p.startswith("/demo")]


async def test_the_page_with_a_trailing_slash_redirects_to_the_page(demo: Api) -> None:
    # A browser that typed /demo/ lands on the page, its query kept; nothing else moves.
    for path, location in [("/demo/", "/demo"), ("/demo/?room=lobby", "/demo?room=lobby")]:
        moved = await demo.http.get(path)
        assert moved.status_code == 308, (path, moved.text)
        assert moved.headers["location"] == location
    followed = await demo.http.get("/demo/", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.headers["content-type"].startswith("text/html")
    assert (await demo.http.get("/demo/static/")).status_code == 404


async def test_page_and_files_are_served_with_a_strict_policy(demo: Api) -> None:
    page = await demo.http.get("/demo")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "/demo/static/vendor/socket.io.min.js" in page.text
    bundle = await demo.http.get("/demo/static/vendor/socket.io.min.js")
    assert bundle.status_code == 200
    assert bundle.text.startswith("/*!\n * Socket.IO v4.8.4\n")
    assert "MIT License" in bundle.text[:200]
    assert (await demo.http.get("/demo/static/app.js")).status_code == 200
    missing = await demo.http.get("/demo/static/nope.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    paths = (await demo.http.get("/api/v1/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/demo")]


async def test_a_session_is_a_scoped_user_key_in_the_shared_rooms(demo_each_db: Api) -> None:
    demo = demo_each_db
    ada = await sign_in(demo, "  Ada   Lovelace ")
    assert ada["display_name"] == "Ada Lovelace"
    assert [r["name"] for r in ada["rooms"]] == ["lobby", "random"]
    me = (await demo.http.get("/api/v1/auth/me", headers=bearer(ada["api_key"]))).json()
    assert me["kind"] == "user"
    assert me["user_id"] == ada["user_id"]
    assert me["scopes"] == sorted(DEMO_SCOPES)  # no rooms:write: the rooms are shared
    assert me["expires_at"] is not None
    assert [r["id"] for r in ada["rooms"]] == [
        demo_room_id(me["client_id"], "lobby"),
        demo_room_id(me["client_id"], "random"),
    ]

    grace = await sign_in(demo, "Grace")
    assert grace["rooms"] == ada["rooms"]
    rooms = await demo.http.get("/api/v1/rooms", headers=bearer(grace["api_key"]))
    assert rooms.status_code == 200
    listed = {r["name"]: r for r in rooms.json()["data"]}
    assert set(listed) == {"lobby", "random"}
    for room in listed.values():
        assert room["type"] == "group"
        assert set(room["member_ids"]) == {ada["user_id"], grace["user_id"]}
        assert room["unread_count"] == 0
    delete = await demo.http.delete(
        f"/api/v1/rooms/{listed['lobby']['id']}", headers=bearer(grace["api_key"])
    )
    assert delete.status_code == 403


async def test_concurrent_first_visitors_make_one_client_and_one_set_of_rooms(
    demo_each_db: Api,
) -> None:
    # The first visitors race to create the demo client and its rooms: the losers of each
    # race find what the winner made (unique slug, fixed room ids).
    names = [f"visitor {n}" for n in range(4)]
    sessions = await asyncio.gather(*(sign_in(demo_each_db, name) for name in names))
    assert len({tuple(r["id"] for r in s["rooms"]) for s in sessions}) == 1
    clients = set()
    for session in sessions:
        me = await demo_each_db.http.get("/api/v1/auth/me", headers=bearer(session["api_key"]))
        clients.add(me.json()["client_id"])
    assert len(clients) == 1
    rooms = await demo_each_db.http.get("/api/v1/rooms", headers=bearer(sessions[0]["api_key"]))
    for room in rooms.json()["data"]:
        assert set(room["member_ids"]) == {s["user_id"] for s in sessions}


async def test_the_same_name_is_the_same_user_and_signs_the_older_key_out(demo: Api) -> None:
    first = await sign_in(demo, "Ada")
    again = await sign_in(demo, "ADA")
    assert again["user_id"] == first["user_id"]
    assert await demo.status_with(first["api_key"], "/api/v1/auth/me") == 401
    assert await demo.status_with(again["api_key"], "/api/v1/auth/me") == 200


async def test_an_operator_made_demo_client_is_used_and_its_master_key_notifies(
    db_url: str,
) -> None:
    slug = f"demo-{secrets.token_hex(4)}"
    app = create_app(
        make_settings(db_url, DEMO_ENABLED=True, DEMO_CLIENT_SLUG=slug),
        run_embedded_worker=False,
    )
    async for http in app_client(app):
        api = Api(http, app=app)
        made = await http.post(
            "/api/v1/clients", json={"name": "Demo", "slug": slug}, headers=bearer(api.admin_key)
        )
        assert made.status_code == 201, made.text
        master = made.json()["master_key"]
        grace = await sign_in(api, "Grace")
        sent = await http.post(
            "/api/v1/notifications/send",
            headers=bearer(master),
            json={
                "channels": ["websocket"],
                "recipients": [{"external_id": "demo:grace"}],
                "websocket": {"event": "order.shipped", "data": {"title": "Shipped"}},
            },
        )
        assert sent.status_code == 202, sent.text
        inbox = await http.get("/api/v1/me/notifications", headers=bearer(grace["api_key"]))
        assert [i["data"] for i in inbox.json()["data"]] == [{"title": "Shipped"}]


async def test_names_are_for_demo_users_keys_only(demo: Api) -> None:
    ada = await sign_in(demo, "Ada")
    grace = await sign_in(demo, "Grace")
    ids = f"{ada['user_id']},{grace['user_id']},01JD6Z3Q8W9X0Y1Z2A3B4C5D6E"
    names = await demo.http.get(f"/demo/users?ids={ids}", headers=bearer(ada["api_key"]))
    assert names.status_code == 200, names.text
    assert names.json() == {"names": {ada["user_id"]: "Ada", grace["user_id"]: "Grace"}}

    keyless = await demo.http.get(f"/demo/users?ids={ids}")
    assert keyless.status_code == 401
    assert keyless.headers["content-type"] == PROBLEM
    other = await demo.tenant()
    stranger = await demo.user(other)
    stranger_key = await demo.login(other, stranger["id"])
    foreign = await demo.http.get(f"/demo/users?ids={ids}", headers=bearer(stranger_key))
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == PROBLEM
    too_many = ",".join(f"{n:026d}" for n in range(101))
    refused = await demo.http.get(f"/demo/users?ids={too_many}", headers=bearer(ada["api_key"]))
    assert refused.status_code == 422


async def test_an_invalid_name_is_a_422_problem(demo: Api) -> None:
    for body in [
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 41},
        {"display_name": "Ada\u202e"},  # a bidi override would reverse the chat's text
        {"display_name": "Ada\x00"},
        {"display_name": "Ada", "admin": True},
        {},
    ]:
        response = await demo.http.post("/demo/session", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == PROBLEM


async def test_logins_are_limited_per_address(demo: Api, clock: ManualClock) -> None:
    # The clock stands still: every login below falls in one window.
    for n in range(LOGINS_PER_MINUTE):
        await sign_in(demo, f"visitor {n}")
    refused = await demo.http.post("/demo/session", json={"display_name": "one more"})
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM
    assert int(refused.headers["retry-after"]) >= 1
    assert "demo logins per minute per address" in refused.json()["detail"]
    clock.advance(61)
    await sign_in(demo, "one more")


def test_enabling_the_demo_without_its_files_is_a_config_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=r"DEMO_DIR: no index\.html"):
        make_settings(sqlite_url, DEMO_ENABLED=True, DEMO_DIR=str(tmp_path))
    assert make_settings(sqlite_url, DEMO_DIR=str(tmp_path)).DEMO_ENABLED is False


def test_the_default_demo_dir_is_the_packages_own(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, DEMO_ENABLED=True)
    assert settings.demo_dir == Path(__file__).resolve().parents[2] / "app" / "demo" / "static"
    assert (settings.demo_dir / "index.html").is_file()
