"""Users' `phone` (E.164, for the sms channel): set on create and PATCH, shown on the user,
removed with null, and refused with a 422 problem when it is not an E.164 number; on both
databases."""

from __future__ import annotations

from tests.support.api import Api


async def test_phone_is_set_shown_changed_and_removed(api: Api) -> None:
    tenant = await api.tenant()
    made = await api.http.post(
        "/api/v1/users", json={"external_id": "u-1", "phone": "+14155550100"}, headers=tenant.auth
    )
    assert made.status_code == 201, made.text
    user = made.json()
    assert user["phone"] == "+14155550100"
    path = f"/api/v1/users/{user['id']}"
    # An upsert that does not name the phone keeps it.
    again = await api.http.post(
        "/api/v1/users", json={"external_id": "u-1", "display_name": "Ada"}, headers=tenant.auth
    )
    assert again.json()["phone"] == "+14155550100"
    patched = await api.http.patch(path, json={"phone": "+447911123456"}, headers=tenant.auth)
    assert patched.status_code == 200, patched.text
    assert (await api.http.get(path, headers=tenant.auth)).json()["phone"] == "+447911123456"
    listed = (await api.http.get("/api/v1/users", headers=tenant.auth)).json()["data"]
    assert [u["phone"] for u in listed] == ["+447911123456"]
    cleared = await api.http.patch(path, json={"phone": None}, headers=tenant.auth)
    assert cleared.json()["phone"] is None
    assert (await api.user(tenant))["phone"] is None


async def test_a_number_that_is_not_e164_is_a_422_problem(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant, phone="+33612345678")
    for phone in (
        "4155550100",  # no country code
        "+1 415 555 0100",  # formatted
        "+1-415-555-0100",
        "+0123456789",  # no country code starts with 0
        "+999123456",  # no such country code
        "+1415555",  # too short for +1
        "+12345678901234567",  # longer than E.164 allows
        "tel:+14155550100",
        14155550100,
        "",
    ):
        for method, path, body in (
            ("POST", "/api/v1/users", {"external_id": "bad", "phone": phone}),
            ("PATCH", f"/api/v1/users/{user['id']}", {"phone": phone}),
        ):
            r = await api.http.request(method, path, json=body, headers=tenant.auth)
            assert r.status_code == 422, (phone, method, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["errors"][0]["loc"][-1] == "phone", r.json()
    # Nothing was changed or made.
    assert (await api.http.get(f"/api/v1/users/{user['id']}", headers=tenant.auth)).json()[
        "phone"
    ] == "+33612345678"
    listed = (await api.http.get("/api/v1/users", headers=tenant.auth)).json()["data"]
    assert [u["external_id"] for u in listed] == [user["external_id"]]
