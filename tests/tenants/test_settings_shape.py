"""One shape for a client's settings (issue 23, point 7): `PATCH /clients/me` and the admin's
`PATCH /clients/{id}` take `{"settings": {...}}`, the shape `GET` answers, so what a client
reads it can change and send back; the top-level form of API.md §3 still works (deprecated).
On both databases."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api, bearer

ME = "/api/v1/clients/me"


async def _settings(api: Api, auth: dict[str, str]) -> dict[str, Any]:
    r = await api.http.get(ME, headers=auth)
    assert r.status_code == 200, r.text
    return dict(r.json()["settings"])


async def test_patch_takes_the_settings_shape_that_get_answers(api: Api) -> None:
    tenant = await api.tenant()
    body = {
        "settings": {
            "room_inactivity_seconds": {"support": 60},
            "max_room_members": 50,
            "rate_limits": {"requests_per_minute": 100, "emails_per_hour": 10},
        }
    }
    r = await api.http.patch(ME, json=body, headers=tenant.auth)
    assert r.status_code == 200, r.text
    settings = await _settings(api, tenant.auth)
    assert r.json()["settings"] == settings
    assert settings["room_inactivity_seconds"]["support"] == 60
    assert settings["room_inactivity_seconds"]["group"] == 30 * 86400  # merged per type
    assert settings["max_room_members"] == 50
    assert settings["rate_limits"]["requests_per_minute"] == 100
    assert settings["rate_limits"]["emails_per_hour"] == 10
    counted = await api.http.get("/api/v1/rooms", headers=tenant.auth)
    assert counted.headers["ratelimit-limit"] == "100"


async def test_what_get_answers_can_be_changed_and_sent_back(api: Api) -> None:
    tenant = await api.tenant()
    settings = await _settings(api, tenant.auth)
    caps = settings.pop("rate_limit_caps")  # read-only: the operator's
    settings["rate_limits"]["webhooks_per_second_per_endpoint"] = 5
    settings["room_inactivity_seconds"]["direct"] = 3600
    r = await api.http.patch(ME, json={"settings": settings}, headers=tenant.auth)
    assert r.status_code == 200, r.text
    assert await _settings(api, tenant.auth) == {**settings, "rate_limit_caps": caps}


async def test_the_top_level_form_still_works(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.patch(
        ME,
        json={"rate_limits": {"requests_per_minute": 70}, "max_room_members": 9},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    settings = await _settings(api, tenant.auth)
    assert settings["rate_limits"]["requests_per_minute"] == 70
    assert settings["max_room_members"] == 9


async def test_a_setting_given_in_both_places_is_a_422_naming_it(api: Api) -> None:
    tenant = await api.tenant()
    before = await _settings(api, tenant.auth)
    r = await api.http.patch(
        ME,
        json={"max_room_members": 10, "settings": {"max_room_members": 20}},
        headers=tenant.auth,
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "max_room_members" in r.json()["detail"], r.json()
    assert await _settings(api, tenant.auth) == before
    # Different settings in the two places merge.
    r = await api.http.patch(
        ME,
        json={"max_room_members": 10, "settings": {"rate_limits": {"requests_per_minute": 9}}},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["max_room_members"] == 10
    assert r.json()["settings"]["rate_limits"]["requests_per_minute"] == 9


async def test_the_caps_are_read_only_for_the_client(api: Api) -> None:
    tenant = await api.tenant()
    before = await _settings(api, tenant.auth)
    r = await api.http.patch(
        ME,
        json={"settings": {"rate_limit_caps": {"requests_per_minute": 99_999}}},
        headers=tenant.auth,
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "rate_limit_caps" in detail and "read-only" in detail, detail
    assert await _settings(api, tenant.auth) == before


async def test_over_a_cap_in_the_settings_shape_the_error_points_there(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.patch(
        ME,
        json={"settings": {"rate_limits": {"requests_per_minute": 5000}}},
        headers=tenant.auth,
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert "RATE_LIMIT_MAX_REQUESTS_PER_MINUTE" in problem["detail"], problem
    assert problem["errors"][0]["loc"] == ["body", "settings", "rate_limits", "requests_per_minute"]


async def test_the_admin_patch_takes_the_same_shape(api: Api) -> None:
    tenant = await api.tenant()
    admin = bearer(api.admin_key)
    url = f"/api/v1/clients/{tenant.id}"
    lift = {"settings": {"rate_limits": {"requests_per_minute": 5000}, "max_room_members": 7}}
    lifted = await api.http.patch(url, json=lift, headers=admin)
    assert lifted.status_code == 200, lifted.text
    mine = await _settings(api, tenant.auth)
    assert mine["rate_limits"]["requests_per_minute"] == 5000
    assert mine["rate_limit_caps"]["requests_per_minute"] == 5000
    assert mine["max_room_members"] == 7
    # null gives the deployment's default and cap back, as in the top-level form.
    reset = {"settings": {"rate_limits": {"requests_per_minute": None}}}
    assert (await api.http.patch(url, json=reset, headers=admin)).status_code == 200
    mine = await _settings(api, tenant.auth)
    assert mine["rate_limits"]["requests_per_minute"] == 1200
    assert mine["rate_limit_caps"]["requests_per_minute"] == 1200


async def test_the_openapi_document_shows_settings_and_deprecates_the_top_level(
    api: Api,
) -> None:
    spec = (await api.http.get("/api/v1/openapi.json")).json()
    patch = spec["components"]["schemas"]["ClientPatch"]["properties"]
    assert "settings" in patch
    for name in ("room_inactivity_seconds", "max_room_members", "rate_limits"):
        assert patch[name].get("deprecated") is True, (name, patch[name])
