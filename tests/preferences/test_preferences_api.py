"""`/me/preferences` and `/users/{id}/preferences` on both databases, and their effect on a
send: a channel turned off is a `skipped` delivery with the reason, `critical` overrides,
an event's entry overrides the channel's, webhooks are never subject to them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.notifications.relay import add_endpoint
from tests.support.api import Api, Tenant, bearer

ME = "/api/v1/me/preferences"


async def _send(api: Api, tenant: Tenant, user_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "channels": ["websocket", "email"],
        "recipients": [{"user_id": user_id}],
        "websocket": {"event": "order.shipped", "data": {}},
        "email": {"subject": "Shipped", "text": "On its way"},
        **fields,
    }
    r = await api.http.post("/api/v1/notifications/send", json=body, headers=tenant.auth)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _by_channel(sent: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["channel"]: d for d in sent["deliveries"]}


async def _put(api: Api, headers: dict[str, str], path: str, doc: dict[str, Any]) -> Any:
    return await api.http.put(path, json=doc, headers=headers)


async def _setup(api: Api) -> tuple[Tenant, str, str]:
    tenant = await api.tenant()
    user = await api.user(tenant, email="ada@example.com")
    return tenant, user["id"], await api.login(tenant, user["id"])


async def test_preferences_start_all_on_and_are_replaced_by_put(api: Api) -> None:
    tenant, user_id, key = await _setup(api)
    r = await api.http.get(ME, headers=bearer(key))
    assert r.status_code == 200 and r.json() == {"channels": {}, "events": {}}
    doc = {"channels": {"email": False}, "events": {"order.shipped": {"email": True}}}
    r = await _put(api, bearer(key), ME, doc)
    assert r.status_code == 200 and r.json() == doc
    master_path = f"/api/v1/users/{user_id}/preferences"
    assert (await api.http.get(master_path, headers=tenant.auth)).json() == doc
    r = await _put(api, tenant.auth, master_path, {"channels": {"websocket": False}})
    assert r.json() == {"channels": {"websocket": False}, "events": {}}
    assert (await api.http.get(ME, headers=bearer(key))).json() == r.json()


@pytest.mark.parametrize(
    "doc",
    [
        {"channels": {"fax": False}},  # no such channel (sms is one now)
        {"channels": {"webhook": False}},
        {"events": {"order.shipped": {"pigeon": True}}},
        {"channels": {"email": "no"}},
        {"channels": {"email": 0}},
        {"channels": {"email": False}, "colour": "blue"},
    ],
)
async def test_unknown_channels_and_non_booleans_are_422(api: Api, doc: dict[str, Any]) -> None:
    tenant, user_id, key = await _setup(api)
    for headers, path in ((bearer(key), ME), (tenant.auth, f"/api/v1/users/{user_id}/preferences")):
        r = await _put(api, headers, path, doc)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
    assert (await api.http.get(ME, headers=bearer(key))).json() == {"channels": {}, "events": {}}


async def test_who_may_read_and_write_preferences(api: Api) -> None:
    tenant, user_id, _ = await _setup(api)
    other = await api.tenant()
    assert (await api.http.get(ME, headers=tenant.auth)).status_code == 403  # master: no "me"
    path = f"/api/v1/users/{user_id}/preferences"
    assert (await api.http.get(path, headers=other.auth)).status_code == 404
    r = await _put(api, other.auth, path, {"channels": {"email": False}})
    assert r.status_code == 404
    assert (await api.http.get(path, headers=tenant.auth)).json()["channels"] == {}


async def test_email_turned_off_is_skipped_with_the_reason_and_critical_overrides(
    api: Api,
) -> None:
    tenant, user_id, key = await _setup(api)
    await _put(api, bearer(key), ME, {"channels": {"email": False}})
    sent = _by_channel(await _send(api, tenant, user_id))
    assert sent["email"]["status"] == "skipped"
    assert sent["email"]["skip_reason"] == "preference: email off"
    assert sent["websocket"]["status"] == "delivered"  # in-app: delivered when stored
    critical = _by_channel(await _send(api, tenant, user_id, critical=True))
    assert critical["email"]["status"] == "pending" and critical["email"]["skip_reason"] is None


async def test_an_events_entry_overrides_the_channels(api: Api) -> None:
    tenant, user_id, key = await _setup(api)
    doc = {
        "channels": {"email": False},
        "events": {"order.shipped": {"email": True}, "promo": {"websocket": False}},
    }
    await _put(api, bearer(key), ME, doc)
    shipped_sent = await _send(api, tenant, user_id)
    shipped = _by_channel(shipped_sent)
    assert shipped["email"]["status"] == "pending"
    other_sent = await _send(api, tenant, user_id, websocket={"event": "order.paid", "data": {}})
    other = _by_channel(other_sent)
    assert other["email"]["skip_reason"] == "preference: email off"
    # metadata.category names the event type, whatever the websocket event is called.
    promo = _by_channel(await _send(api, tenant, user_id, metadata={"category": "promo"}))
    assert promo["websocket"]["status"] == "skipped"
    assert promo["websocket"]["skip_reason"] == "preference: websocket off for promo"
    assert promo["email"]["status"] == "skipped"  # promo has no email entry: channel rule
    # A skipped websocket delivery was never sent: it is not in the inbox either.
    items = (await api.http.get("/api/v1/me/notifications", headers=bearer(key))).json()["data"]
    assert sorted(i["notification_id"] for i in items) == sorted(
        [shipped_sent["id"], other_sent["id"]]
    )


async def test_webhook_deliveries_ignore_user_preferences(api: Api) -> None:
    tenant, user_id, key = await _setup(api)
    assert api.app is not None
    await add_endpoint(api.app, tenant, "https://93.184.215.14/hook")
    await _put(api, bearer(key), ME, {"channels": {"email": False, "websocket": False}})
    sent = await _send(
        api,
        tenant,
        user_id,
        channels=["websocket", "webhook"],
        webhook={"event_type": "order.shipped", "payload": {}},
    )
    by = _by_channel(sent)
    assert by["websocket"]["status"] == "skipped" and by["webhook"]["status"] == "pending"
