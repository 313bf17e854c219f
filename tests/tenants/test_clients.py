"""Clients: created by the operator's key, configured by their master key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.api import Api, bearer


async def test_admin_key_creates_a_client_with_a_master_key_shown_once(api: Api) -> None:
    r = await api.http.post(
        "/api/v1/clients", json={"name": "Acme Shop"}, headers=bearer(api.admin_key)
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "name", "slug", "master_key"}
    assert body["slug"].startswith("acme-shop")
    me = await api.http.get("/api/v1/clients/me", headers=bearer(body["master_key"]))
    assert me.status_code == 200
    assert "master_key" not in me.json()
    assert body["master_key"] not in me.text


async def test_creating_a_client_needs_the_admin_key(api: Api) -> None:
    tenant = await api.tenant()
    no_key = await api.http.post("/api/v1/clients", json={"name": "x"})
    assert no_key.status_code == 401
    assert no_key.headers["content-type"] == "application/problem+json"
    as_master = await api.http.post("/api/v1/clients", json={"name": "x"}, headers=tenant.auth)
    assert as_master.status_code == 403
    assert as_master.headers["content-type"] == "application/problem+json"


async def test_without_admin_key_configured_client_creation_is_forbidden(sqlite_url: str) -> None:
    from app.main import create_app
    from tests.conftest import app_client, make_settings

    app = create_app(make_settings(sqlite_url, ADMIN_API_KEY=None), run_embedded_worker=False)
    async for http in app_client(app):
        r = await http.post("/api/v1/clients", json={"name": "x"}, headers=bearer("anything"))
        assert r.status_code == 403
        assert "ADMIN_API_KEY" in r.json()["detail"]


async def test_duplicate_slug_is_a_conflict(api: Api) -> None:
    first = await api.http.post(
        "/api/v1/clients",
        json={"name": "A", "slug": "dup-slug-" + os.urandom(3).hex()},
        headers=bearer(api.admin_key),
    )
    again = await api.http.post(
        "/api/v1/clients",
        json={"name": "B", "slug": first.json()["slug"]},
        headers=bearer(api.admin_key),
    )
    assert again.status_code == 409


async def test_settings_default_and_merge_per_room_type(api: Api) -> None:
    tenant = await api.tenant()
    me = (await api.http.get("/api/v1/clients/me", headers=tenant.auth)).json()
    assert me["settings"]["room_inactivity_seconds"] == {
        "support": 7 * 86400,
        "group": 30 * 86400,
        "direct": 90 * 86400,
        "channel": 180 * 86400,
    }
    r = await api.http.patch(
        "/api/v1/clients/me",
        json={"room_inactivity_seconds": {"support": 60}},
        headers=tenant.auth,
    )
    assert r.status_code == 200
    inactivity = r.json()["settings"]["room_inactivity_seconds"]
    assert inactivity["support"] == 60
    assert inactivity["group"] == 30 * 86400


async def test_invalid_settings_are_a_422_problem(api: Api) -> None:
    tenant = await api.tenant()
    for body in (
        {"room_inactivity_seconds": {"lobby": 5}},
        {"room_inactivity_seconds": {"support": -1}},
        {"unknown_setting": 1},
    ):
        r = await api.http.patch("/api/v1/clients/me", json=body, headers=tenant.auth)
        assert r.status_code == 422, body
        assert r.json()["errors"]


def test_cli_creates_a_client_and_prints_its_master_key_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "VIRTUAL_ENV")}
    env |= {"BCRYPT_ROUNDS": "4"}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "clients", "create", "Helpdesk Co"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert set(body) == {"id", "name", "slug", "master_key"}
    assert body["slug"] == "helpdesk-co"
    assert body["master_key"].startswith("ck_")
    assert body["master_key"] not in run.stderr
