"""The relay end to end in the embedded default (SQLite, in-process Celery worker and beat):
real sockets, a real SMTP server (aiosmtpd), a real HTTP receiver verifying signatures with
`standardwebhooks`. Retries use a short DELIVERY_RETRY_SCHEDULE and a fast sweep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.channels.conftest import example_plugin_installed
from tests.channels.receiver import Receiver, running_receiver
from tests.channels.test_email import Recorder, SmtpHost
from tests.notifications.relay import (
    Relay,
    add_endpoint,
    attempts,
    notification,
    running_relay,
    send,
    set_email_config,
    wait_for_status,
)
from tests.support.api import Tenant
from tests.support.realtime import WsClient, until, wait_for

__all__ = ["example_plugin_installed"]


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    """The embedded relay served over TCP (sockets connect for real)."""
    async for r in running_relay(own_sqlite_url):
        yield r


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
def smtp() -> Iterator[SmtpHost]:
    host = SmtpHost(Recorder())
    yield host
    host.stop()


def webhook_body(event_type: str = "order.shipped", **fields: object) -> dict[str, object]:
    return {
        "channels": ["webhook"],
        "webhook": {"event_type": event_type, "payload": {"order": "A-1"}, **fields},
    }


async def test_all_three_channels_deliver(relay: Relay, receiver: Receiver, smtp: SmtpHost) -> None:
    api = relay.api
    tenant = await api.tenant()
    user = await api.user(tenant, email="ada@example.com")
    key = await api.login(tenant, user["id"])
    endpoint_id, secret = await add_endpoint(relay.app, tenant, receiver.url("/hook"))
    await set_email_config(relay.app, tenant, smtp.port)
    socket = await WsClient.open(relay.base, key)
    try:
        sent = await send(
            api,
            tenant,
            {
                "channels": ["websocket", "email", "webhook"],
                "recipients": [{"user_id": user["id"]}],
                "websocket": {"event": "order.shipped", "data": {"order": "A-1"}},
                "email": {"subject": "Shipped", "text": "On its way", "html": "<p>On its way</p>"},
                "webhook": {"event_type": "order.shipped", "payload": {"order": "A-1"}},
            },
        )
        done = await wait_for_status(api, tenant, sent["id"], {"delivered", "partial", "failed"})
        assert done["status"] == "delivered", done
        _, data = await wait_for(socket.events, lambda e: e[0] == "notification")
        assert data == {
            "event": "order.shipped",
            "data": {"order": "A-1"},
            "notification_id": sent["id"],
            "inbox_id": next(d["id"] for d in done["deliveries"] if d["channel"] == "websocket"),
        }
        [got] = receiver.requests
        payload = Webhook(secret).verify(got.body, got.headers)
        assert payload["type"] == "order.shipped" and payload["data"] == {"order": "A-1"}
        webhook_delivery = next(d for d in done["deliveries"] if d["channel"] == "webhook")
        assert got.headers["webhook-id"] == webhook_delivery["id"]
        assert webhook_delivery["recipient"] == {"endpoint_id": endpoint_id}
        [mail] = smtp.recorder.messages
        assert mail["Subject"] == "Shipped" and mail["To"] == "ada@example.com"
        recorded = await attempts(api, tenant, sent["id"])
        # In-app was delivered when stored, in the send: no attempt of a channel to record.
        assert sorted(a["channel"] for a in recorded) == ["email", "webhook"]
        by_channel = {a["channel"]: a for a in recorded}
        assert by_channel["webhook"]["response_code"] == 204
        assert by_channel["email"]["response_code"] == 250
        assert by_channel["email"]["served_by"] == "smtp"  # the provider /email-config saves
    finally:
        await socket.close()


async def test_receiver_failing_twice_is_delivered_on_the_third_attempt_with_one_webhook_id(
    relay: Relay, receiver: Receiver
) -> None:
    tenant = await relay.api.tenant()
    await add_endpoint(relay.app, tenant, receiver.url("/flaky"))
    receiver.script("/flaky", 500, 500, 200)
    sent = await send(relay.api, tenant, webhook_body())
    done = await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "delivered"
    [delivery] = done["deliveries"]
    assert delivery["attempts"] == 3
    recorded = await attempts(relay.api, tenant, sent["id"])
    assert [a["response_code"] for a in recorded] == [500, 500, 200]
    assert [a["outcome"] for a in recorded] == ["retry", "retry", "delivered"]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery["id"]}


async def test_always_failing_receiver_dead_letters_emits_exhausted_and_retry_delivers(
    relay: Relay, receiver: Receiver
) -> None:
    api = relay.api
    tenant = await api.tenant()
    await add_endpoint(relay.app, tenant, receiver.url("/down"))
    _, ops_secret = await add_endpoint(
        relay.app, tenant, receiver.url("/ops"), ["delivery.exhausted"]
    )
    receiver.answer("/down", 500)
    master = await WsClient.open(relay.base, tenant.master_key)
    try:
        sent = await send(api, tenant, webhook_body())
        done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
        assert done["status"] == "failed"
        [delivery] = done["deliveries"]
        assert delivery["status"] == "failed" and delivery["attempts"] == 3  # schedule 1,1
        assert "HTTP 500" in delivery["last_error"]
        _, event = await wait_for(master.events, lambda e: e[0] == "delivery.exhausted")
        assert event["delivery_id"] == delivery["id"]
        assert event["notification_id"] == sent["id"]
        await until(lambda: "/ops" in receiver.paths(), "delivery.exhausted webhook", 10)
        ops = next(r for r in receiver.requests if r.path == "/ops")
        assert Webhook(ops_secret).verify(ops.body, ops.headers)["type"] == "delivery.exhausted"
        receiver.answer("/down", 200)
        r = await api.http.post(f"/api/v1/notifications/{sent['id']}/retry", headers=tenant.auth)
        assert r.status_code == 200
        assert r.json()["status"] == "pending"
        again = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
        assert again["status"] == "delivered"
        assert receiver.paths().count("/down") == 4
    finally:
        await master.close()


async def test_a_410_disables_the_endpoint_and_tells_master_sockets_and_other_endpoints(
    relay: Relay, receiver: Receiver
) -> None:
    api = relay.api
    tenant = await api.tenant()
    gone_id, _ = await add_endpoint(relay.app, tenant, receiver.url("/gone"), ["order.shipped"])
    _, ops_secret = await add_endpoint(
        relay.app, tenant, receiver.url("/ops"), ["endpoint.disabled"]
    )
    receiver.answer("/gone", 410)
    master = await WsClient.open(relay.base, tenant.master_key)
    try:
        sent = await send(api, tenant, webhook_body())
        done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
        assert done["status"] == "failed"
        _, event = await wait_for(master.events, lambda e: e[0] == "endpoint.disabled")
        assert event["endpoint_id"] == gone_id
        await until(lambda: "/ops" in receiver.paths(), "endpoint.disabled webhook", 10)
        ops = next(r for r in receiver.requests if r.path == "/ops")
        told = Webhook(ops_secret).verify(ops.body, ops.headers)
        assert told["type"] == "endpoint.disabled"
        assert told["data"]["endpoint_id"] == gone_id
        r = await api.http.get(f"/api/v1/webhook-endpoints/{gone_id}", headers=tenant.auth)
        assert r.json()["disabled"] is True
        # A disabled endpoint is no subscriber: a second send makes no delivery for it.
        again = await send(api, tenant, webhook_body())
        assert again["deliveries"] == []
        assert receiver.paths().count("/gone") == 1
    finally:
        await master.close()


async def test_offline_user_gets_the_notification_when_connecting(relay: Relay) -> None:
    api = relay.api
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    sent = await send(
        api,
        tenant,
        {
            "channels": ["websocket"],
            "recipients": [{"user_id": user["id"]}],
            "websocket": {"event": "inbox", "data": {"n": 1}},
        },
    )
    # Delivered when stored (the inbox item), though nobody is connected.
    [d] = (await notification(api, tenant, sent["id"]))["deliveries"]
    assert (d["status"], d["attempts"], d["next_attempt_at"]) == ("delivered", 0, None)
    assert d["delivered_at"] is not None
    socket = await WsClient.open(relay.base, key)
    try:
        _, data = await wait_for(socket.events, lambda e: e[0] == "notification", timeout=10)
        assert data["notification_id"] == sent["id"] and data["data"] == {"n": 1}
        assert data["inbox_id"] == d["id"]
    finally:
        await socket.close()


async def test_a_scheduled_in_app_send_is_delivered_and_pushed_at_send_at(relay: Relay) -> None:
    api = relay.api
    tenant = await api.tenant()
    user = await api.user(tenant)
    socket = await WsClient.open(relay.base, await api.login(tenant, user["id"]))
    try:
        send_at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
        sent = await send(
            api,
            tenant,
            {
                "channels": ["websocket"],
                "recipients": [{"user_id": user["id"]}],
                "websocket": {"event": "later", "data": {}},
                "send_at": send_at.isoformat(),
            },
        )
        assert sent["status"] == "scheduled"
        assert sent["deliveries"][0]["status"] == "pending"
        # The worker takes it at send_at and pushes its batch's in-app deliveries at once.
        _, data = await wait_for(socket.events, lambda e: e[0] == "notification", timeout=15)
        assert data["inbox_id"] == sent["deliveries"][0]["id"]
        assert datetime.now(timezone.utc) >= send_at
        done = await wait_for_status(api, tenant, sent["id"], {"delivered"})
        assert done["deliveries"][0]["status"] == "delivered"
    finally:
        await socket.close()


async def test_a_slow_endpoint_does_not_hold_up_a_fast_one(
    relay: Relay, receiver: Receiver
) -> None:
    api = relay.api
    tenant = await api.tenant()
    slow, _ = await add_endpoint(relay.app, tenant, receiver.url("/slow"))
    fast, _ = await add_endpoint(relay.app, tenant, receiver.url("/fast"))
    receiver.hold("/slow")  # never released: every request to it times out (2 s)
    sent = [await send(api, tenant, webhook_body()) for _ in range(3)]
    fast_done: list[datetime] = []
    slow_first: list[datetime] = []
    for item in sent:
        body = await wait_for_status(api, tenant, item["id"], {"pending", "partial", "delivered"})
        recorded = []
        for _ in range(200):
            recorded = await attempts(api, tenant, item["id"])
            if {a["recipient"]["endpoint_id"] for a in recorded} == {slow, fast}:
                break
            await asyncio.sleep(0.05)
        by_endpoint = {
            e: [a for a in recorded if a["recipient"]["endpoint_id"] == e] for e in (slow, fast)
        }
        assert by_endpoint[fast][0]["outcome"] == "delivered", body
        assert "timeout" in (by_endpoint[slow][0]["error"] or "")
        fast_done.append(datetime.fromisoformat(by_endpoint[fast][0]["attempted_at"]))
        slow_first.append(datetime.fromisoformat(by_endpoint[slow][0]["attempted_at"]))
    # Every fast delivery was recorded before the first slow attempt had even finished.
    assert max(fast_done) < min(slow_first)
    for item in sent:
        await api.http.post(f"/api/v1/notifications/{item['id']}/cancel", headers=tenant.auth)


async def test_a_pip_installed_channel_delivers_through_send(
    example_plugin_installed: None,
    own_sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "file-channel.jsonl"
    monkeypatch.setenv("CHATAPI_FILE_CHANNEL_PATH", str(out))
    async for relay in running_relay(own_sqlite_url):
        api = relay.api
        tenant: Tenant = await api.tenant()
        user = await api.user(tenant)
        sent = await send(
            api,
            tenant,
            {
                "channels": ["file"],
                "recipients": [{"user_id": user["id"]}],
                "file": {"event": "greeting", "text": "hello"},
            },
        )
        done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
        assert done["status"] == "delivered"
        [line] = [json.loads(x) for x in out.read_text().splitlines()]
        assert line["notification_id"] == sent["id"]
        assert line["user_id"] == user["id"] and line["content"] == {
            "event": "greeting",
            "text": "hello",
        }


async def test_a_scheduled_send_goes_out_at_send_at(relay: Relay, receiver: Receiver) -> None:
    tenant = await relay.api.tenant()
    await add_endpoint(relay.app, tenant, receiver.url("/later"))
    send_at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    sent = await send(relay.api, tenant, {**webhook_body(), "send_at": send_at.isoformat()})
    assert sent["status"] == "scheduled"
    assert receiver.requests == []
    done = await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "delivered"
    [attempt] = await attempts(relay.api, tenant, sent["id"])
    assert datetime.fromisoformat(attempt["attempted_at"]) >= send_at


async def test_a_ring_whose_claim_fails_is_rung_again_within_seconds_not_a_lease(
    relay: Relay, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from app.notifications import delivery

    claim_many = delivery.deliveries.claim_many
    failed: list[int] = []

    async def locked_once(*args: object, **kwargs: object) -> object:
        # What SQLite raises when another process holds the write lock past busy_timeout.
        if not failed:
            failed.append(1)
            raise OperationalError("UPDATE deliveries", {}, Exception("database is locked"))
        return await claim_many(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery.deliveries, "claim_many", locked_once)
    tenant = await relay.api.tenant()
    await add_endpoint(relay.app, tenant, receiver.url("/hooks"))
    sent = await send(relay.api, tenant, webhook_body())
    # Fresh sends are rung by the API; the sweep re-rings them only after a lease (10 s).
    done = await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"}, timeout=5)
    assert failed == [1]
    assert done["status"] == "delivered"
    assert done["deliveries"][0]["attempts"] == 1
