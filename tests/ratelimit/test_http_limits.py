"""HTTP rate limits (API.md §8): RateLimit-* headers on every authenticated answer, 429
problem+json with Retry-After, per-client settings, one budget across API processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from app.core.clock import ManualClock, utcnow
from tests.conftest import child_env, make_settings
from tests.support.api import Api, bearer
from tests.support.processes import running_server

HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


async def test_every_authenticated_answer_carries_the_ratelimit_headers(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    first = await api.http.get("/api/v1/clients/me", headers=tenant.auth)
    second = await api.http.get("/api/v1/rooms", headers=tenant.auth)
    missing = await api.http.get("/api/v1/rooms/nope", headers=tenant.auth)
    for response in (first, second, missing):
        assert all(h in response.headers for h in HEADERS), response.headers
    assert int(second.headers["ratelimit-remaining"]) == (
        int(first.headers["ratelimit-remaining"]) - 1
    )
    assert missing.status_code == 404
    assert 1 <= int(first.headers["ratelimit-reset"]) <= 60
    # Unauthenticated answers are not counted and carry none.
    assert "ratelimit-limit" not in (await api.http.get("/health/live")).headers


async def test_a_client_setting_changes_the_limit_and_going_over_is_a_429_problem(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    patched = await api.http.patch(
        "/api/v1/clients/me",
        json={"rate_limits": {"requests_per_minute": 3}},
        headers=tenant.auth,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["rate_limits"]["requests_per_minute"] == 3
    answers = [await api.http.get("/api/v1/rooms", headers=tenant.auth) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-limit"] for r in answers] == ["3"] * 4
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # The window resets on the minute: the key works again.
    clock.advance(60)
    again = await api.http.get("/api/v1/rooms", headers=tenant.auth)
    assert again.status_code == 200 and again.headers["ratelimit-remaining"] == "2"


async def test_a_429_names_the_limit_its_window_and_whose_it_is(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    limits = {"requests_per_minute": 2}
    r = await api.http.patch(
        "/api/v1/clients/me", json={"settings": {"rate_limits": limits}}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    answers = [await api.http.get("/api/v1/rooms", headers=tenant.auth) for _ in range(3)]
    assert answers[-1].status_code == 429
    detail = answers[-1].json()["detail"]
    assert "2 requests per minute per API key" in detail, detail

    other = await api.tenant()
    limits = {"client_requests_per_minute": 2}
    r = await api.http.patch(
        "/api/v1/clients/me", json={"settings": {"rate_limits": limits}}, headers=other.auth
    )
    assert r.status_code == 200, r.text
    user_key = await api.login(other, (await api.user(other))["id"])
    refused = await api.http.get("/api/v1/rooms", headers=bearer(user_key))
    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert "2 requests per minute for the whole client" in detail, detail


async def test_the_client_limit_counts_all_its_keys_together(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    await api.http.patch(
        "/api/v1/clients/me",
        json={"rate_limits": {"client_requests_per_minute": 2}},
        headers=tenant.auth,
    )
    user = await api.user(tenant)
    user_key = await api.login(tenant, user["id"])
    statuses = [
        (await api.http.get("/api/v1/rooms", headers=headers)).status_code
        for headers in (tenant.auth, bearer(user_key), bearer(user_key))
    ]
    # The login above was counted too: the client's budget is spent by then.
    assert statuses[-1] == 429


async def test_rate_limit_settings_are_bounded(api: Api) -> None:
    tenant = await api.tenant()
    for bad in ({"requests_per_minute": 0}, {"emails_per_hour": "10"}, {"nope": 1}):
        r = await api.http.patch(
            "/api/v1/clients/me", json={"rate_limits": bad}, headers=tenant.auth
        )
        assert r.status_code == 422, (bad, r.text)


@pytest.mark.slow
async def test_two_api_processes_on_one_redis_share_the_limit(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}rl:"
    )
    env = child_env(settings)
    with (
        running_server(env, tmp_path, "api-a") as a,
        running_server(env, tmp_path, "api-b") as b,
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            admin = bearer(settings.ADMIN_API_KEY or "")
            created = await http.post(f"{a}/api/v1/clients", json={"name": "rl"}, headers=admin)
            master = bearer(created.json()["master_key"])
            r = await http.patch(
                f"{b}/api/v1/clients/me",
                json={"rate_limits": {"requests_per_minute": 3}},
                headers=master,
            )
            assert r.status_code == 200, r.text
            # Windows are whole minutes: start well inside one, so all six requests share it.
            if utcnow().second >= 50:
                await asyncio.sleep(61 - utcnow().second)
            answers = [
                await http.get(f"{base}/api/v1/rooms", headers=master)
                for base in (a, b, a, b, a, b)
            ]
    # Each process saw three requests: only a shared count refuses the fourth.
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
    assert all("retry-after" in r.headers for r in answers[3:])


async def test_deployment_defaults_above_the_client_bounds_are_shown(sqlite_url: str) -> None:
    from app.main import create_app
    from tests.conftest import app_client

    settings = make_settings(sqlite_url, RATE_LIMIT_REQUESTS_PER_MINUTE=100_000_000)
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        tenant = await Api(http, app=app).tenant()
        r = await http.get("/api/v1/clients/me", headers=tenant.auth)
        assert r.status_code == 200, r.text
        assert r.json()["settings"]["rate_limits"]["requests_per_minute"] == 100_000_000


async def test_a_client_name_with_a_nul_or_a_lone_surrogate_is_a_422(api: Api) -> None:
    tenant = await api.tenant()
    for name in ("a\x00b", "a\ud800b"):
        body = '{"name": ' + ('"a\\u0000b"' if "\x00" in name else '"a\\ud800b"') + "}"
        r = await api.http.patch(
            "/api/v1/clients/me",
            content=body,
            headers={**tenant.auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 422, r.text
