"""POST /notifications/send and the notification routes, on SQLite and PostgreSQL (no worker:
what is stored and answered, not what is delivered — see test_delivery_e2e.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.core.clock import ManualClock, utcnow
from app.main import create_app
from app.worker.doorbell import CeleryDoorbell, Message
from tests.conftest import app_client, make_settings
from tests.notifications.relay import add_endpoint, notification, send
from tests.support.api import Api, Tenant

URL = "/api/v1/notifications/send"


def ws_body(*recipients: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "channels": ["websocket"],
        "recipients": list(recipients),
        "websocket": {"event": "order.shipped", "data": {"order": "A-1"}},
        **extra,
    }


async def test_send_stores_one_delivery_per_channel_and_recipient_and_answers_202(
    api: Api,
) -> None:
    tenant = await api.tenant()
    ada = await api.user(tenant, email="ada@example.com")
    bob = await api.user(tenant)
    body = {
        "channels": ["websocket", "email"],
        "recipients": [
            {"user_id": ada["id"]},
            {"external_id": bob["external_id"]},
            {"email": "ops@example.com"},
        ],
        "websocket": {"event": "order.shipped", "data": {}},
        "email": {"subject": "Shipped", "text": "On its way"},
    }
    sent = await send(api, tenant, body)
    assert sent["status"] == "pending"
    assert sent["channels"] == ["websocket", "email"]
    pairs = {
        (d["channel"], d["recipient"].get("user_id") or d["recipient"].get("email"), d["status"])
        for d in sent["deliveries"]
    }
    assert pairs == {
        ("websocket", ada["id"], "pending"),
        ("websocket", bob["id"], "pending"),
        ("websocket", "ops@example.com", "skipped"),
        ("email", ada["id"], "pending"),
        ("email", bob["id"], "skipped"),  # bob has no e-mail address
        ("email", "ops@example.com", "pending"),
    }
    skipped = [d for d in sent["deliveries"] if d["status"] == "skipped"]
    assert all(d["skip_reason"] for d in skipped)
    assert await notification(api, tenant, sent["id"]) == sent


async def test_unknown_recipients_are_422_naming_them(api: Api) -> None:
    tenant = await api.tenant()
    known = await api.user(tenant)
    r = await api.http.post(
        URL,
        json=ws_body(
            {"user_id": known["id"]}, {"user_id": "01NOSUCHUSER"}, {"external_id": "ghost-7"}
        ),
        headers=tenant.auth,
    )
    assert r.status_code == 422, r.text
    assert "01NOSUCHUSER" in r.json()["detail"] and "ghost-7" in r.json()["detail"]
    assert r.json()["errors"]


async def test_another_tenants_user_is_an_unknown_recipient(api: Api) -> None:
    tenant, other = await api.tenant(), await api.tenant()
    theirs = await api.user(other)
    r = await api.http.post(URL, json=ws_body({"user_id": theirs["id"]}), headers=tenant.auth)
    assert r.status_code == 422
    assert theirs["id"] in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"channels": ["websocket", "pigeon"]}, "pigeon"),
        ({"websocket": None}, "websocket"),
        ({"channels": ["email"], "email": {"subject": "no body"}}, "html or text"),
        ({"recipients": []}, "recipient"),
        ({"recipients": [{"user_id": "a", "email": "a@b.co"}]}, "exactly one"),
        ({"pigeon": {"x": 1}}, "pigeon"),
    ],
)
async def test_invalid_send_is_422_saying_why(api: Api, change: dict[str, Any], named: str) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    body = {**ws_body({"user_id": user["id"]}), **change}
    r = await api.http.post(URL, json=body, headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert named in r.text


async def test_webhook_channel_goes_to_every_enabled_subscribed_endpoint(api: Api) -> None:
    assert api.app is not None
    tenant = await api.tenant()
    wanted, _ = await add_endpoint(api.app, tenant, "https://a.example/hook", ["order.shipped"])
    every, _ = await add_endpoint(api.app, tenant, "https://b.example/hook")
    await add_endpoint(api.app, tenant, "https://c.example/hook", ["other.event"])
    sent = await send(
        api,
        tenant,
        {"channels": ["webhook"], "webhook": {"event_type": "order.shipped", "payload": {}}},
    )
    assert sorted(d["recipient"]["endpoint_id"] for d in sent["deliveries"]) == sorted(
        [wanted, every]
    )
    r = await api.http.post(
        URL,
        json={"channels": ["webhook"], "webhook": {"event_type": "x", "endpoint_ids": ["01NOPE"]}},
        headers=tenant.auth,
    )
    assert r.status_code == 422 and "01NOPE" in r.json()["detail"]


async def test_same_idempotency_key_returns_the_first_notification_and_another_body_is_422(
    api: Api,
) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    first = await send(api, tenant, ws_body({"user_id": user["id"]}, idempotency_key="k-1"))
    again = await api.http.post(
        URL, json=ws_body({"user_id": user["id"]}, idempotency_key="k-1"), headers=tenant.auth
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    header = await api.http.post(
        URL,
        json=ws_body({"user_id": user["id"]}),
        headers={**tenant.auth, "Idempotency-Key": "k-1"},
    )
    assert header.status_code == 200 and header.json()["id"] == first["id"]
    changed = ws_body({"user_id": user["id"]}, idempotency_key="k-1")
    changed["websocket"]["data"] = {"order": "B-2"}
    different = await api.http.post(URL, json=changed, headers=tenant.auth)
    assert different.status_code == 422
    listed = await api.http.get("/api/v1/notifications", headers=tenant.auth)
    assert [n["id"] for n in listed.json()["data"]] == [first["id"]]


async def test_idempotency_key_is_free_again_after_24_hours(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    first = await send(api, tenant, ws_body({"user_id": user["id"]}, idempotency_key="day"))
    clock.advance(24 * 3600 + 1)
    second = await send(api, tenant, ws_body({"user_id": user["id"]}, idempotency_key="day"))
    assert second["id"] != first["id"]


async def test_concurrent_sends_with_one_key_make_one_notification(pg_url: str) -> None:
    app = create_app(make_settings(pg_url), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        user = await api.user(tenant)
        body = ws_body({"user_id": user["id"]}, idempotency_key="race")
        answers = await asyncio.gather(
            *(http.post(URL, json=body, headers=tenant.auth) for _ in range(5))
        )
        codes = sorted(r.status_code for r in answers)
        assert codes.count(202) == 1, codes
        assert set(codes) <= {200, 202, 409}
        ids = {r.json()["id"] for r in answers if r.status_code in (200, 202)}
        assert len(ids) == 1
        listed = await http.get("/api/v1/notifications", headers=tenant.auth)
        assert len(listed.json()["data"]) == 1


async def test_send_at_in_the_future_is_scheduled_and_cancel_cancels_it(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    send_at = (utcnow() + timedelta(hours=1)).isoformat()
    sent = await send(api, tenant, ws_body({"user_id": user["id"]}, send_at=send_at))
    assert sent["status"] == "scheduled"
    assert [d["status"] for d in sent["deliveries"]] == ["pending"]
    due = sent["deliveries"][0]["next_attempt_at"]
    assert due is not None and due.startswith(send_at[:19])
    r = await api.http.post(f"/api/v1/notifications/{sent['id']}/cancel", headers=tenant.auth)
    assert r.status_code == 200
    assert r.json()["status"] == "canceled"
    assert [d["status"] for d in r.json()["deliveries"]] == ["canceled"]
    # Nothing left to cancel: the same answer again, not an error.
    again = await api.http.post(f"/api/v1/notifications/{sent['id']}/cancel", headers=tenant.auth)
    assert again.status_code == 200 and again.json()["status"] == "canceled"


async def test_listing_filters_by_status_channel_and_time(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant, email="u@example.com")
    ws = await send(api, tenant, ws_body({"user_id": user["id"]}))
    mail = await send(
        api,
        tenant,
        {
            "channels": ["email"],
            "recipients": [{"user_id": user["id"]}],
            "email": {"subject": "s", "html": "<p>h</p>"},
        },
    )
    later = (utcnow() + timedelta(hours=2)).isoformat()
    scheduled = await send(api, tenant, ws_body({"user_id": user["id"]}, send_at=later))

    async def ids(query: str) -> list[str]:
        r = await api.http.get(f"/api/v1/notifications?{query}", headers=tenant.auth)
        assert r.status_code == 200, r.text
        return [n["id"] for n in r.json()["data"]]

    assert await ids("") == [scheduled["id"], mail["id"], ws["id"]]
    assert await ids("channel=email") == [mail["id"]]
    assert await ids("status=scheduled") == [scheduled["id"]]
    page = await api.http.get("/api/v1/notifications?limit=2", headers=tenant.auth)
    cursor = page.json()["next_cursor"]
    assert await ids(f"limit=2&cursor={cursor}") == [ws["id"]]
    future = httpx.QueryParams({"created_after": (utcnow() + timedelta(minutes=1)).isoformat()})
    assert await ids(str(future)) == []
    numeric = await api.http.get(
        "/api/v1/notifications?created_after=1786896686", headers=tenant.auth
    )
    assert numeric.status_code == 422  # ISO 8601 only, as the schema says
    counts = (await api.http.get("/api/v1/notifications", headers=tenant.auth)).json()["data"]
    assert counts[0]["delivery_counts"] == {"pending": 1}


async def test_user_key_cannot_send(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    r = await api.http.post(
        URL, json=ws_body({"user_id": user["id"]}), headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 403


async def test_unknown_notification_is_404_everywhere(api: Api) -> None:
    tenant: Tenant = await api.tenant()
    for method, path in (
        ("GET", "/api/v1/notifications/01NOPE"),
        ("GET", "/api/v1/notifications/01NOPE/attempts"),
        ("POST", "/api/v1/notifications/01NOPE/cancel"),
        ("POST", "/api/v1/notifications/01NOPE/retry"),
    ):
        r = await api.http.request(method, path, headers=tenant.auth)
        assert r.status_code == 404, (method, path)


async def test_send_answers_202_without_waiting_for_a_hung_broker_and_rings_once_it_answers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker is stood in for at the one call that talks to it: the runtime's doorbell's
    # `send` blocks until the gate opens (a broker that does not answer), then publishes.
    assert api.app is not None
    bell: CeleryDoorbell = api.app.state.runtime.doorbell
    gate = threading.Event()
    rung: list[str] = []
    real_send = bell.send

    def hung_send(messages: Sequence[Message]) -> None:
        gate.wait(60)
        rung.extend(i for _, args, _ in messages for i in args[1])
        real_send(messages)

    monkeypatch.setattr(bell, "send", hung_send)
    tenant = await api.tenant()
    user = await api.user(tenant)
    try:
        r = await asyncio.wait_for(
            api.http.post(URL, json=ws_body({"user_id": user["id"]}), headers=tenant.auth), 30
        )
        assert r.status_code == 202, r.text
        assert rung == []  # answered while the broker still hung
    finally:
        gate.set()
    await asyncio.wait_for(bell.drain(), 30)
    assert rung == [d["id"] for d in r.json()["deliveries"]]
