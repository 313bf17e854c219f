"""Operator caps on the rate limits and quotas a tenant sets for itself: above the cap a
`PATCH /clients/me` is a 422 naming it, and only the admin key (`PATCH /clients/{id}`) lifts
a tenant past it; on both databases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.config import ConfigError, load_settings
from app.core.db import Database
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant, bearer

ME = "/api/v1/clients/me"
# Each limit a tenant sets, the operator's cap on it, and the cap's default (the deployment
# default of the limit itself).
CAPS = {
    "requests_per_minute": ("RATE_LIMIT_MAX_REQUESTS_PER_MINUTE", 1200),
    "client_requests_per_minute": ("RATE_LIMIT_MAX_CLIENT_REQUESTS_PER_MINUTE", 6000),
    "emails_per_hour": ("RATE_LIMIT_MAX_EMAILS_PER_HOUR", 1000),
    "sms_per_hour": ("RATE_LIMIT_MAX_SMS_PER_HOUR", 1000),
    "webhooks_per_second_per_endpoint": ("RATE_LIMIT_MAX_WEBHOOKS_PER_SECOND_PER_ENDPOINT", 20),
}
DEFAULTS = {name: default for name, (_, default) in CAPS.items()}


async def _patch_me(api: Api, tenant: Tenant, limits: dict[str, Any]) -> httpx.Response:
    return await api.http.patch(ME, json={"rate_limits": limits}, headers=tenant.auth)


async def _settings(api: Api, tenant: Tenant) -> dict[str, Any]:
    r = await api.http.get(ME, headers=tenant.auth)
    assert r.status_code == 200, r.text
    return dict(r.json()["settings"])


def _assert_over_cap(r: httpx.Response, name: str, cap: int, words: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert str(cap) in problem["detail"] and words in problem["detail"], problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "rate_limits", name], problem["errors"]


async def test_a_tenant_cannot_raise_its_limits_past_the_operator_caps(api: Api) -> None:
    tenant = await api.tenant()
    # The probe: a tenant set itself a million requests a minute.
    over = await _patch_me(api, tenant, {"requests_per_minute": 1_000_000})
    _assert_over_cap(over, "requests_per_minute", 1200, "RATE_LIMIT_MAX_REQUESTS_PER_MINUTE")
    for name, (variable, cap) in CAPS.items():
        # (100,000: within what the admin key may set for each, so the cap is what refuses.)
        _assert_over_cap(await _patch_me(api, tenant, {name: 100_000}), name, cap, variable)
        _assert_over_cap(await _patch_me(api, tenant, {name: cap + 1}), name, cap, variable)
    settings = await _settings(api, tenant)
    assert settings["rate_limits"] == DEFAULTS
    assert settings["rate_limit_caps"] == DEFAULTS
    # Lowering (and raising back up to the cap) is the tenant's own business.
    lowered = await _patch_me(api, tenant, {"requests_per_minute": 10, "emails_per_hour": 5})
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["settings"]["rate_limits"]["emails_per_hour"] == 5
    back = await _patch_me(api, tenant, {"emails_per_hour": 1000})
    assert back.status_code == 200, back.text


async def test_the_operator_sets_the_caps_in_the_environment(db_url: str) -> None:
    settings = make_settings(db_url, RATE_LIMIT_MAX_EMAILS_PER_HOUR=5000)
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        assert (await _settings(api, tenant))["rate_limit_caps"]["emails_per_hour"] == 5000
        assert (await _patch_me(api, tenant, {"emails_per_hour": 5000})).status_code == 200
        over = await _patch_me(api, tenant, {"emails_per_hour": 5001})
        _assert_over_cap(over, "emails_per_hour", 5000, "RATE_LIMIT_MAX_EMAILS_PER_HOUR")


async def test_only_the_admin_key_lifts_a_tenant_past_the_caps(api: Api) -> None:
    tenant = await api.tenant()
    other = await api.tenant()
    admin = bearer(api.admin_key)
    url = f"/api/v1/clients/{tenant.id}"
    lift = {"rate_limits": {"requests_per_minute": 5000}}
    assert (await api.http.patch(url, json=lift, headers=tenant.auth)).status_code == 403
    assert (await api.http.get(url, headers=tenant.auth)).status_code == 403
    missing = await api.http.patch("/api/v1/clients/01NOSUCHCLIENT", json=lift, headers=admin)
    assert missing.status_code == 404

    lifted = await api.http.patch(url, json=lift, headers=admin)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["id"] == tenant.id
    assert lifted.json()["settings"]["rate_limits"]["requests_per_minute"] == 5000
    assert (await api.http.get(url, headers=admin)).json() == lifted.json()
    mine = await _settings(api, tenant)
    assert mine["rate_limits"]["requests_per_minute"] == 5000
    assert mine["rate_limit_caps"]["requests_per_minute"] == 5000
    counted = await api.http.get("/api/v1/rooms", headers=tenant.auth)
    assert counted.headers["ratelimit-limit"] == "5000"

    # Within what the operator granted, the tenant moves freely; past it, 422 again.
    assert (await _patch_me(api, tenant, {"requests_per_minute": 100})).status_code == 200
    assert (await _patch_me(api, tenant, {"requests_per_minute": 5000})).status_code == 200
    _assert_over_cap(
        await _patch_me(api, tenant, {"requests_per_minute": 5001}),
        "requests_per_minute",
        5000,
        "operator",
    )
    # Another tenant is still held to the deployment's cap.
    _assert_over_cap(
        await _patch_me(api, other, {"requests_per_minute": 5000}),
        "requests_per_minute",
        1200,
        "RATE_LIMIT_MAX_REQUESTS_PER_MINUTE",
    )
    # null gives the tenant back the deployment's default and cap.
    cleared = await api.http.patch(
        url, json={"rate_limits": {"requests_per_minute": None}}, headers=admin
    )
    assert cleared.status_code == 200, cleared.text
    assert (await _settings(api, tenant))["rate_limits"] == DEFAULTS
    assert (await _settings(api, tenant))["rate_limit_caps"] == DEFAULTS


async def test_a_limit_raised_before_the_caps_existed_is_held_to_them(api: Api) -> None:
    tenant = await api.tenant()
    assert api.app is not None
    db = Database(api.app.state.settings.DATABASE_URL)
    try:
        async with db.session() as session:
            await session.execute(
                text("UPDATE clients SET settings = :s WHERE id = :id"),
                {"s": '{"rate_limits": {"requests_per_minute": 1000000}}', "id": tenant.id},
            )
            await session.commit()
    finally:
        await db.dispose()
    assert (await _settings(api, tenant))["rate_limits"]["requests_per_minute"] == 1200
    counted = await api.http.get("/api/v1/rooms", headers=tenant.auth)
    assert counted.headers["ratelimit-limit"] == "1200"


@pytest.mark.parametrize("name", [variable for variable, _ in CAPS.values()])
def test_a_cap_below_its_deployment_default_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any(line.startswith(name) for line in info.value.problems), info.value.problems
