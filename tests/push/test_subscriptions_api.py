"""`/me/push-subscriptions` on SQLite and PostgreSQL: validation, idempotency per endpoint,
listing and deleting one's own, isolation between users and tenants, the secret kept."""

from __future__ import annotations

from typing import Any

from app.providers.models import PushSubscription
from app.push.schemas import PushSubscriptionOut
from tests.support.api import Api, Tenant, bearer
from tests.support.push_keys import BrowserKeys, b64url

URL = "/api/v1/me/push-subscriptions"
ENDPOINT = "https://push.example.net/wpush/v2/gAAAAABk-abc"


async def _user_key(api: Api, tenant: Tenant) -> tuple[str, dict[str, str]]:
    user = await api.user(tenant)
    return user["id"], bearer(await api.login(tenant, user["id"]))


async def test_register_webpush_then_again_is_the_same_one(api: Api) -> None:
    tenant = await api.tenant()
    _, auth = await _user_key(api, tenant)
    keys = BrowserKeys()
    first = await api.http.post(URL, json=keys.subscription(ENDPOINT), headers=auth)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["kind"] == "webpush" and body["endpoint"] == ENDPOINT
    assert body["p256dh"] == keys.p256dh and body["fcm_token"] is None
    assert "auth" not in str(body).replace("user_agent", "")  # the secret is never returned
    again = await api.http.post(URL, json=keys.subscription(ENDPOINT), headers=auth)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == body["id"]
    listed = (await api.http.get(URL, headers=auth)).json()["data"]
    assert [s["id"] for s in listed] == [body["id"]]


async def test_new_keys_for_a_known_endpoint_replace_the_old(api: Api) -> None:
    tenant = await api.tenant()
    _, auth = await _user_key(api, tenant)
    first = await api.http.post(URL, json=BrowserKeys().subscription(ENDPOINT), headers=auth)
    renewed = BrowserKeys()
    again = await api.http.post(URL, json=renewed.subscription(ENDPOINT), headers=auth)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["p256dh"] == renewed.p256dh


async def test_register_fcm_token(api: Api) -> None:
    tenant = await api.tenant()
    _, auth = await _user_key(api, tenant)
    r = await api.http.post(URL, json={"fcm_token": "dev-token:APA91b-1"}, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "fcm" and r.json()["fcm_token"] == "dev-token:APA91b-1"
    assert r.json()["endpoint"] is None
    again = await api.http.post(URL, json={"fcm_token": "dev-token:APA91b-1"}, headers=auth)
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]


async def test_invalid_subscriptions_are_422_problems(api: Api) -> None:
    tenant = await api.tenant()
    _, auth = await _user_key(api, tenant)
    good = BrowserKeys().subscription(ENDPOINT)
    compressed = "A" + good["keys"]["p256dh"][1:]  # first byte no longer 0x04
    not_on_curve = b64url(b"\x04" + b"\x01" * 64)
    cases: list[dict[str, Any]] = [
        {**good, "endpoint": "http://push.example.net/x"},
        {**good, "endpoint": "https://user:pw@push.example.net/x"},
        {**good, "endpoint": "not a url"},
        {**good, "endpoint": "https://127.0.0.1/x"},  # loopback literal (policy refuses it)
        {**good, "endpoint": "https://169.254.169.254/x"},  # metadata, never allowed
        {**good, "keys": {"p256dh": good["keys"]["p256dh"], "auth": b64url(b"short")}},
        {**good, "keys": {"p256dh": good["keys"]["p256dh"][:-4], "auth": good["keys"]["auth"]}},
        {**good, "keys": {"p256dh": compressed, "auth": good["keys"]["auth"]}},
        {**good, "keys": {"p256dh": not_on_curve, "auth": good["keys"]["auth"]}},
        {**good, "keys": {"p256dh": "+/+/", "auth": good["keys"]["auth"]}},
        {"endpoint": ENDPOINT},
        {**good, "fcm_token": "both"},
        {"fcm_token": ""},
        {"fcm_token": "has space"},
        {},
        {**good, "surprise": 1},
    ]
    for payload in cases:
        r = await api.http.post(URL, json=payload, headers=auth)
        assert r.status_code == 422, (payload, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert (await api.http.get(URL, headers=auth)).json()["data"] == []


async def test_needs_a_user_key(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(URL, json=BrowserKeys().subscription(ENDPOINT), headers=tenant.auth)
    assert r.status_code == 403
    assert (await api.http.get(URL)).status_code == 401


async def test_users_see_and_delete_only_their_own(api: Api) -> None:
    tenant, other_tenant = await api.tenant(), await api.tenant()
    _, ann = await _user_key(api, tenant)
    _, bob = await _user_key(api, tenant)
    _, eve = await _user_key(api, other_tenant)
    mine = (await api.http.post(URL, json=BrowserKeys().subscription(ENDPOINT), headers=ann)).json()
    # The same endpoint for another user is that user's own subscription.
    bobs = await api.http.post(URL, json=BrowserKeys().subscription(ENDPOINT), headers=bob)
    assert bobs.status_code == 201 and bobs.json()["id"] != mine["id"]
    assert [s["id"] for s in (await api.http.get(URL, headers=bob)).json()["data"]] == [
        bobs.json()["id"]
    ]
    for intruder in (bob, eve):
        r = await api.http.delete(f"{URL}/{mine['id']}", headers=intruder)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"] == "application/problem+json"
    assert [s["id"] for s in (await api.http.get(URL, headers=ann)).json()["data"]] == [mine["id"]]
    assert (await api.http.delete(f"{URL}/{mine['id']}", headers=ann)).status_code == 204
    assert (await api.http.delete(f"{URL}/{mine['id']}", headers=ann)).status_code == 404
    assert (await api.http.get(URL, headers=ann)).json()["data"] == []


async def test_the_auth_secret_is_sealed_at_rest(api: Api) -> None:
    tenant = await api.tenant()
    _, auth = await _user_key(api, tenant)
    keys = BrowserKeys()
    made = (await api.http.post(URL, json=keys.subscription(ENDPOINT), headers=auth)).json()
    assert api.app is not None
    runtime = api.app.state.runtime
    async with runtime.db.session() as session:
        row = await session.get(PushSubscription, made["id"])
    assert row is not None
    assert keys.auth not in str(row.keys)
    assert runtime.secret_box.open(row.keys["auth_sealed"]) == keys.auth
    assert PushSubscriptionOut.of(row).model_dump().get("auth") is None


async def test_a_user_has_at_most_fifty(api: Api) -> None:
    tenant = await api.tenant()
    _, auth = await _user_key(api, tenant)
    for i in range(50):
        r = await api.http.post(URL, json={"fcm_token": f"token-{i}"}, headers=auth)
        assert r.status_code == 201, r.text
    over = await api.http.post(URL, json={"fcm_token": "token-50"}, headers=auth)
    assert over.status_code == 409, over.text
    # A known one is still answered (no new row).
    assert (
        await api.http.post(URL, json={"fcm_token": "token-7"}, headers=auth)
    ).status_code == 200
