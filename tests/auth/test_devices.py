"""Devices: login rotates one device's key; at most MAX_DEVICES_PER_USER devices per user."""

from __future__ import annotations

from typing import Any

from app.auth.authenticator import Authenticator
from tests.support.api import Api, Tenant


async def _login(api: Api, tenant: Tenant, user_id: str, device: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id}
    if device is not None:
        body["device_id"] = device
    r = await api.http.post("/api/v1/auth/login", json=body, headers=tenant.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _works(api: Api, key: str) -> bool:
    status = await api.status_with(key, "/api/v1/auth/me")
    assert status in (200, 401), status
    return status == 200


async def test_two_devices_stay_logged_in_and_a_relogin_rotates_only_its_device(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    phone = await _login(api, tenant, user["id"], "phone")
    laptop = await _login(api, tenant, user["id"], "laptop")
    assert phone["device_id"] == "phone" and laptop["device_id"] == "laptop"
    assert await _works(api, phone["api_key"]) and await _works(api, laptop["api_key"])

    phone_again = await _login(api, tenant, user["id"], "phone")
    assert not await _works(api, phone["api_key"])
    assert await _works(api, laptop["api_key"])
    assert await _works(api, phone_again["api_key"])

    keys = (await api.http.get(f"/api/v1/keys?user_id={user['id']}", headers=tenant.auth)).json()
    live = {k["device_id"] for k in keys["data"] if k["revoked_at"] is None}
    assert live == {"phone", "laptop"}


async def test_a_login_without_device_is_the_default_device(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    first = await _login(api, tenant, user["id"], None)
    tablet = await _login(api, tenant, user["id"], "tablet")
    second = await _login(api, tenant, user["id"], None)
    assert first["device_id"] == "default" == second["device_id"]
    assert not await _works(api, first["api_key"])
    assert await _works(api, tablet["api_key"]) and await _works(api, second["api_key"])


async def test_the_eleventh_device_revokes_the_least_recently_used(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    keys = {f"d{i}": (await _login(api, tenant, user["id"], f"d{i}"))["api_key"] for i in range(10)}
    # d0 is used after every other device logged in: d1 becomes the least recently used.
    assert await _works(api, keys["d0"])
    assert api.app is not None
    authenticator: Authenticator = api.app.state.authenticator
    await authenticator.flush_last_used()

    eleventh = await _login(api, tenant, user["id"], "d10")
    assert not await _works(api, keys["d1"])
    for device in ["d0", *(f"d{i}" for i in range(2, 10))]:
        assert await _works(api, keys[device]), device
    assert await _works(api, eleventh["api_key"])


async def test_a_bad_device_id_is_a_problem(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    r = await api.http.post(
        "/api/v1/auth/login",
        json={"user_id": user["id"], "device_id": "has spaces/and slashes"},
        headers=tenant.auth,
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
