"""`/me/notifications` and `/users/{id}/notifications` on both databases: a send to an
offline user is an unread inbox item, state changes, counts, scopes, isolation, the
`notification.count` event after every change, scheduling, cancel and retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from app.core.clock import ManualClock
from app.notifications import sweep
from app.realtime.events import user_target
from tests.support.api import Api, Tenant, bearer

ME = "/api/v1/me/notifications"


async def _send(api: Api, tenant: Tenant, user_ids: list[str], **fields: Any) -> dict[str, Any]:
    body = {
        "channels": ["websocket"],
        "recipients": [{"user_id": u} for u in user_ids],
        "websocket": {"event": "order.shipped", "data": {"order": "A-1"}},
        **fields,
    }
    r = await api.http.post("/api/v1/notifications/send", json=body, headers=tenant.auth)
    assert r.status_code == 202, r.text
    return dict(r.json())


async def _get(api: Api, key: str, path: str = ME, **params: Any) -> httpx.Response:
    return await api.http.get(path, headers=bearer(key), params=params)


async def _post(api: Api, key: str, path: str) -> httpx.Response:
    return await api.http.post(path, headers=bearer(key))


async def _count(api: Api, key: str) -> dict[str, int]:
    r = await _get(api, key, f"{ME}/count")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _user_with_key(api: Api, tenant: Tenant, **login: Any) -> tuple[str, str]:
    user = await api.user(tenant)
    return user["id"], await api.login(tenant, user["id"], **login)


async def test_a_notification_to_an_offline_user_is_one_unread_item(api: Api) -> None:
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    sent = await _send(api, tenant, [user_id])
    [delivery] = sent["deliveries"]
    r = await _get(api, key)
    assert r.status_code == 200, r.text
    [item] = r.json()["data"]
    # The item is the websocket delivery seen from its recipient: the same id.
    assert item["id"] == delivery["id"] and item["notification_id"] == sent["id"]
    assert (item["event"], item["data"]) == ("order.shipped", {"order": "A-1"})
    assert item["read_at"] is None and item["seen_at"] is None and item["archived_at"] is None
    assert await _count(api, key) == {"unread": 1, "unseen": 1, "total": 1}


async def test_each_action_changes_the_item_and_announces_the_counts(api: Api) -> None:
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    item_id = (await _send(api, tenant, [user_id]))["deliveries"][0]["id"]
    await _send(api, tenant, [user_id])
    heard = await api.capture(tenant, user_target(user_id))
    expected = {
        "seen": {"unread": 2, "unseen": 1, "total": 2},
        "read": {"unread": 1, "unseen": 1, "total": 2},
        "unread": {"unread": 2, "unseen": 1, "total": 2},
        "archive": {"unread": 1, "unseen": 1, "total": 1},
        "unarchive": {"unread": 2, "unseen": 1, "total": 2},
    }
    for action, counts in expected.items():
        r = await _post(api, key, f"{ME}/{item_id}/{action}")
        assert r.status_code == 200, (action, r.text)
        assert r.json()["id"] == item_id
        assert await _count(api, key) == counts, action
        assert (heard[-1].event, heard[-1].data) == ("notification.count", counts), action
    # Already unarchived: nothing changes, nothing is announced.
    before = len(heard)
    assert (await _post(api, key, f"{ME}/{item_id}/unarchive")).status_code == 200
    await _post(api, key, f"{ME}/{item_id}/read")  # the sentinel: this one is announced
    assert len(heard) == before + 1 and heard[-1].data["unread"] == 1


async def test_read_all_and_archive_read(api: Api) -> None:
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    for _ in range(3):
        await _send(api, tenant, [user_id])
    heard = await api.capture(tenant, user_target(user_id))
    r = await _post(api, key, f"{ME}/read-all")
    assert r.status_code == 200, r.text
    assert r.json() == {"updated": 3, "unread": 0, "unseen": 0, "total": 3}
    assert heard[-1].data == {"unread": 0, "unseen": 0, "total": 3}
    assert len((await _get(api, key, read=True)).json()["data"]) == 3
    r = await _post(api, key, f"{ME}/archive-read")
    assert r.json() == {"updated": 3, "unread": 0, "unseen": 0, "total": 0}
    assert heard[-1].data == {"unread": 0, "unseen": 0, "total": 0}
    assert (await _get(api, key, archived=False)).json()["data"] == []
    assert len((await _get(api, key, archived=True)).json()["data"]) == 3


async def test_filters_and_cursor_pages(api: Api) -> None:
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    ids = []
    for event in ("a", "b", "a"):
        sent = await _send(api, tenant, [user_id], websocket={"event": event, "data": {}})
        ids.append(sent["deliveries"][0]["id"])
    first = (await _get(api, key, limit=2)).json()
    assert [i["id"] for i in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = (await _get(api, key, limit=2, cursor=first["next_cursor"])).json()
    assert [i["id"] for i in rest["data"]] == [ids[0]] and not rest["has_more"]
    only_a = (await _get(api, key, event="a")).json()["data"]
    assert [i["id"] for i in only_a] == [ids[2], ids[0]]
    await _post(api, key, f"{ME}/{ids[1]}/seen")
    assert [i["id"] for i in (await _get(api, key, seen=True)).json()["data"]] == [ids[1]]
    assert len((await _get(api, key, seen=False)).json()["data"]) == 2
    assert (await _get(api, key, read="maybe")).status_code == 422


async def test_another_users_or_tenants_items_are_404_and_never_listed(api: Api) -> None:
    tenant, other_tenant = await api.tenant(), await api.tenant()
    owner_id, owner_key = await _user_with_key(api, tenant)
    _, neighbour_key = await _user_with_key(api, tenant)
    stranger_id, stranger_key = await _user_with_key(api, other_tenant)
    item_id = (await _send(api, tenant, [owner_id]))["deliveries"][0]["id"]
    for key in (neighbour_key, stranger_key):
        assert (await _get(api, key)).json()["data"] == []
        assert await _count(api, key) == {"unread": 0, "unseen": 0, "total": 0}
        for action in ("read", "unread", "seen", "archive", "unarchive"):
            r = await _post(api, key, f"{ME}/{item_id}/{action}")
            assert r.status_code == 404, (action, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
        await _post(api, key, f"{ME}/read-all")
    # The owner's item was untouched by all that.
    assert await _count(api, owner_key) == {"unread": 1, "unseen": 1, "total": 1}
    # The master-key view: own users only.
    r = await api.http.get(f"/api/v1/users/{owner_id}/notifications", headers=tenant.auth)
    assert r.status_code == 200 and [i["id"] for i in r.json()["data"]] == [item_id]
    r = await api.http.get(f"/api/v1/users/{owner_id}/notifications", headers=other_tenant.auth)
    assert r.status_code == 404
    r = await api.http.get(f"/api/v1/users/{stranger_id}/notifications", headers=tenant.auth)
    assert r.status_code == 404


async def test_the_inbox_needs_a_user_key_with_notifications_read(api: Api) -> None:
    tenant = await api.tenant()
    user_id, narrow_key = await _user_with_key(api, tenant, scopes=["messages:read"])
    item_id = (await _send(api, tenant, [user_id]))["deliveries"][0]["id"]
    for path in (ME, f"{ME}/count"):
        assert (await _get(api, narrow_key, path)).status_code == 403
        assert (await _get(api, tenant.master_key, path)).status_code == 403
    for path in (f"{ME}/{item_id}/read", f"{ME}/read-all", f"{ME}/archive-read"):
        assert (await _post(api, narrow_key, path)).status_code == 403
    # The master key reads a user's inbox on the support route instead.
    r = await _get(api, tenant.master_key, f"/api/v1/users/{user_id}/notifications")
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    r = await _get(api, narrow_key, f"/api/v1/users/{user_id}/notifications")
    assert r.status_code == 403


async def test_a_scheduled_notification_enters_the_inbox_at_its_time(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    at = clock.now() + timedelta(hours=1)
    await _send(api, tenant, [user_id], send_at=at.isoformat())
    assert await _count(api, key) == {"unread": 0, "unseen": 0, "total": 0}
    assert (await _get(api, key)).json()["data"] == []
    clock.advance(3601)
    assert await _count(api, key) == {"unread": 1, "unseen": 1, "total": 1}


async def test_a_cancelled_notification_leaves_the_inbox(api: Api, clock: ManualClock) -> None:
    # Scheduled: a notification sent now is delivered (stored) at once, nothing to cancel.
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    sent = await _send(
        api, tenant, [user_id], send_at=(clock.now() + timedelta(hours=1)).isoformat()
    )
    heard = await api.capture(tenant, user_target(user_id))
    r = await api.http.post(f"/api/v1/notifications/{sent['id']}/cancel", headers=tenant.auth)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert await _count(api, key) == {"unread": 0, "unseen": 0, "total": 0}
    assert (heard[-1].event, heard[-1].data["total"]) == ("notification.count", 0)


async def test_items_older_than_the_retention_are_purged(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    user_id, key = await _user_with_key(api, tenant)
    await _send(api, tenant, [user_id])
    assert api.app is not None
    runtime = api.app.state.runtime
    clock.advance(89 * 86400)
    await sweep.purge_inbox(runtime)
    assert (await _count(api, key))["total"] == 1
    clock.advance(2 * 86400)
    assert await sweep.purge_inbox(runtime) >= 1
    assert (await _count(api, key))["total"] == 0
