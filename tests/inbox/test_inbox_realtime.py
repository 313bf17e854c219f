"""The inbox over real sockets in the embedded relay: the `notification` event carries the
inbox item's id on both transports, and a change made on one device reaches the others as
`notification.count`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.notifications.relay import send
from tests.notifications.test_delivery_e2e import Relay, running_relay
from tests.support.api import bearer
from tests.support.realtime import SioClient, WsClient, wait_for


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(own_sqlite_url):
        yield r


async def test_notification_carries_the_inbox_id_and_read_updates_every_device(
    relay: Relay,
) -> None:
    api = relay.api
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    phone = await WsClient.open(relay.base, key)
    laptop = await SioClient.open(relay.base, key)
    try:
        sent = await send(
            api,
            tenant,
            {
                "channels": ["websocket"],
                "recipients": [{"user_id": user["id"]}],
                "websocket": {"event": "order.shipped", "data": {"order": "A-1"}},
            },
        )
        items = (await api.http.get("/api/v1/me/notifications", headers=bearer(key))).json()
        [item] = items["data"]
        for device in (phone, laptop):
            _, data = await wait_for(device.events, lambda e: e[0] == "notification")
            assert data["inbox_id"] == item["id"] and data["notification_id"] == sent["id"]
        r = await api.http.post(f"/api/v1/me/notifications/{item['id']}/read", headers=bearer(key))
        assert r.status_code == 200, r.text
        for device in (phone, laptop):
            _, counts = await wait_for(device.events, lambda e: e[0] == "notification.count")
            assert counts == {"unread": 0, "unseen": 0, "total": 1}
    finally:
        await phone.close()
        await laptop.close()
