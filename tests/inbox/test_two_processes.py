"""Scaled mode: two API processes and a Celery worker on Redis and PostgreSQL. A
notification to an offline user is an unread item; once the user's two devices are
connected to different processes, marking it read on one sends `notification.count` to the
other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.core.config import Settings
from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.support.api import bearer
from tests.support.processes import chatapi_process, running_server
from tests.support.realtime import SioClient, WsClient, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scaled_settings(pg_url: str, redis_server_url: str, redis_prefix: str) -> Settings:
    return make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}inbox:"
    )


@pytest.fixture(scope="module")
def cluster(
    scaled_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """API processes A and B plus one Celery worker, sharing Redis and PostgreSQL."""
    workdir = tmp_path_factory.mktemp("inbox-cluster")
    env = child_env(scaled_settings)
    with (
        running_server(env, workdir, "api-a") as a,
        running_server(env, workdir, "api-b") as b,
        chatapi_process(["worker", "--concurrency", "2"], env, workdir, "worker"),
    ):
        yield a, b


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_read_on_one_device_updates_the_other_device_on_another_process(
    cluster: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = cluster
    r = await http.post(f"{a}/api/v1/clients", json={"name": "inbox"}, headers=bearer(ADMIN_KEY))
    master = bearer(r.json()["master_key"])
    user = (await http.post(f"{a}/api/v1/users", json={"external_id": "u"}, headers=master)).json()
    r = await http.post(f"{a}/api/v1/auth/login", json={"user_id": user["id"]}, headers=master)
    key = r.json()["api_key"]

    # Offline: the notification is an unread item, seen from either process.
    r = await http.post(
        f"{a}/api/v1/notifications/send",
        json={
            "channels": ["websocket"],
            "recipients": [{"user_id": user["id"]}],
            "websocket": {"event": "order.shipped", "data": {"order": "A-1"}},
        },
        headers=master,
    )
    assert r.status_code == 202, r.text
    [item] = (await http.get(f"{b}/api/v1/me/notifications", headers=bearer(key))).json()["data"]
    assert item["read_at"] is None and item["notification_id"] == r.json()["id"]
    count = await http.get(f"{b}/api/v1/me/notifications/count", headers=bearer(key))
    assert count.json() == {"unread": 1, "unseen": 1, "total": 1}

    phone = await WsClient.open(a, key)
    laptop = await SioClient.open(b, key)
    try:
        # Connecting pushes the owed notification (the API process): its event names the item.
        _, data = await wait_for(phone.events, lambda e: e[0] == "notification", timeout=20)
        assert data["inbox_id"] == item["id"]
        r = await http.post(f"{a}/api/v1/me/notifications/{item['id']}/read", headers=bearer(key))
        assert r.status_code == 200, r.text
        # On the other device, through the other process, within a second.
        _, counts = await wait_for(
            laptop.events, lambda e: e[0] == "notification.count", timeout=1.0
        )
        assert counts == {"unread": 0, "unseen": 0, "total": 1}
        await wait_for(phone.events, lambda e: e[0] == "notification.count")
    finally:
        await phone.close()
        await laptop.close()
