"""Events processed by the embedded Celery worker: templates, room/message actions,
failures recorded on the event (never a 500), replay, the actions awaiting the relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from app.main import create_app
from tests.channels.receiver import running_receiver
from tests.conftest import app_client, make_settings
from tests.inbound import signing
from tests.inbound.conftest import count_events, events, make_hook, post
from tests.notifications.relay import FINAL, add_endpoint, running_relay, wait_for_status
from tests.support.api import Api, Tenant
from tests.support.realtime import WsClient, until, wait_for

GITHUB_TEMPLATE = {
    "content": "New issue: {{ body.issue.title }}",
    "metadata": {
        "url": "{{ body.issue.html_url }}",
        "labels": "{{ body.issue.labels | map(attribute='name') | list }}",
    },
    "room": {
        "key": "issue-{{ body.issue.id }}",
        "name": "{{ body.repository.full_name }}#{{ body.issue.number }}",
        "type": "support",
        "metadata": {"issue_id": "{{ body.issue.id }}"},
    },
}


@pytest.fixture
async def worker_api(db_url: str) -> AsyncIterator[Api]:
    """The API with its embedded Celery worker and beat (the default `chatapi serve`)."""
    app = create_app(make_settings(db_url))
    async for http in app_client(app):
        yield Api(http, app=app)


async def settled(
    api: Api, tenant: Tenant, hook_id: str, event_id: str, timeout: float = 20
) -> dict[str, Any]:
    """The event once it is processed or failed (polling the listing, with a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for event in await events(api, tenant, hook_id):
            if event["id"] == event_id and event["status"] in ("processed", "failed"):
                return event
        assert asyncio.get_running_loop().time() < deadline, f"event {event_id} not settled"
        await asyncio.sleep(0.05)


async def github_event(
    api: Api, hook: dict[str, Any], payload: dict[str, Any], delivery: str | None = None
) -> str:
    body = signing.dumps(payload)
    r = await post(api, hook["url"], body, signing.github(hook["secret"], body, delivery=delivery))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def messages_of(api: Api, tenant: Tenant, room_id: str) -> list[dict[str, Any]]:
    r = await api.http.get(f"/api/v1/rooms/{room_id}/messages", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def test_github_issue_opens_one_support_room_per_issue_with_a_message(
    worker_api: Api,
) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        name="github",
        scheme="github",
        action="message",
        config={"template": GITHUB_TEMPLATE},
    )
    first = await github_event(api, hook, signing.github_issue(9001, "Crash on start"))
    event = await settled(api, tenant, hook["id"], first)
    assert event["status"] == "processed", event
    outcome = event["outcome"]
    assert outcome["room_created"] is True and outcome["message_created"] is True
    room = (await api.http.get(f"/api/v1/rooms/{outcome['room_id']}", headers=tenant.auth)).json()
    assert (room["type"], room["name"], room["metadata"]) == (
        "support",
        "acme/app#1",
        {"issue_id": 9001},
    )
    [message] = await messages_of(api, tenant, outcome["room_id"])
    assert message["id"] == outcome["message_id"]
    assert message["content"] == "New issue: Crash on start"
    assert message["metadata"] == {"url": "https://github.com/acme/app/issues/1", "labels": ["bug"]}

    # The same issue again (a new delivery): the same room, a second message.
    again = await github_event(
        api, hook, signing.github_issue(9001, "Crash on start", action="edited")
    )
    reused = (await settled(api, tenant, hook["id"], again))["outcome"]
    assert reused["room_id"] == outcome["room_id"] and reused["room_created"] is False
    assert len(await messages_of(api, tenant, outcome["room_id"])) == 2
    # Another issue: its own room.
    other = await github_event(api, hook, signing.github_issue(9002, "Typo"))
    assert (await settled(api, tenant, hook["id"], other))["outcome"]["room_id"] != outcome[
        "room_id"
    ]


async def test_repeated_delivery_is_processed_once(worker_api: Api) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api, tenant, scheme="github", action="message", config={"template": GITHUB_TEMPLATE}
    )
    payload = signing.github_issue(77, "Once")
    first = await github_event(api, hook, payload, delivery="d-77")
    assert await github_event(api, hook, payload, delivery="d-77") == first
    event = await settled(api, tenant, hook["id"], first)
    # A sentinel event for another issue, processed after: the repeat had its chance.
    sentinel = await github_event(api, hook, signing.github_issue(78, "Sentinel"))
    await settled(api, tenant, hook["id"], sentinel)
    assert event["attempts"] == 1
    assert len(await messages_of(api, tenant, event["outcome"]["room_id"])) == 1
    assert await count_events(api, hook["id"]) == 2


async def test_template_error_fails_the_event_not_the_request(worker_api: Api) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        scheme="github",
        action="message",
        config={"template": {"content": "{{ body.issue.missing.title }}", "room": {"key": "k"}}},
    )
    event_id = await github_event(api, hook, signing.github_issue(1, "x"))
    event = await settled(api, tenant, hook["id"], event_id)
    assert event["status"] == "failed"
    assert "template" in event["error"] and "missing" in event["error"]
    assert event["outcome"] is None


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('touch /tmp/pwned').read() }}",
        "{{ self._TemplateReference__context }}",
    ],
)
async def test_sandbox_escape_fails_the_event_and_executes_nothing(
    worker_api: Api, escape: str, tmp_path: Any
) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        scheme="github",
        action="room",
        config={"template": {"name": escape, "key": "k"}},
    )
    event_id = await github_event(api, hook, signing.github_issue(1, "x"))
    event = await settled(api, tenant, hook["id"], event_id)
    assert event["status"] == "failed"
    assert "sandbox" in event["error"] or "unsafe" in event["error"], event["error"]
    rooms = (await api.http.get("/api/v1/rooms", headers=tenant.auth)).json()["data"]
    assert rooms == []


async def test_body_that_is_not_json_fails_the_event(worker_api: Api) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github", action="room")
    body = b"a=1&b=2"
    r = await post(api, hook["url"], body, signing.github(hook["secret"], body))
    event = await settled(api, tenant, hook["id"], r.json()["id"])
    assert event["status"] == "failed" and "not JSON" in event["error"]


async def test_replay_processes_a_failed_event_again_after_the_hook_is_fixed(
    worker_api: Api,
) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        scheme="github",
        action="message",
        config={"template": {"content": "{{ body.nope }}", "room": {"key": "r"}}},
    )
    event_id = await github_event(api, hook, signing.github_issue(5, "Replayed"))
    assert (await settled(api, tenant, hook["id"], event_id))["status"] == "failed"
    fixed = await api.http.patch(
        f"/api/v1/inbound-webhooks/{hook['id']}",
        json={"config": {"template": GITHUB_TEMPLATE}},
        headers=tenant.auth,
    )
    assert fixed.status_code == 200, fixed.text
    r = await api.http.post(
        f"/api/v1/inbound-webhooks/{hook['id']}/events/{event_id}/replay", headers=tenant.auth
    )
    assert r.status_code == 202, r.text
    event = await settled(api, tenant, hook["id"], event_id)
    assert event["status"] == "processed"
    assert event["error"] is None
    [message] = await messages_of(api, tenant, event["outcome"]["room_id"])
    assert message["content"] == "New issue: Replayed"


async def test_replay_of_a_processed_event_acts_again(worker_api: Api) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api, tenant, scheme="github", action="message", config={"template": GITHUB_TEMPLATE}
    )
    event_id = await github_event(api, hook, signing.github_issue(6, "Twice"))
    first = await settled(api, tenant, hook["id"], event_id)
    await api.http.post(
        f"/api/v1/inbound-webhooks/{hook['id']}/events/{event_id}/replay", headers=tenant.auth
    )
    deadline = asyncio.get_running_loop().time() + 20
    while len(await messages_of(api, tenant, first["outcome"]["room_id"])) < 2:
        assert asyncio.get_running_loop().time() < deadline, "replay did not post again"
        await asyncio.sleep(0.05)
    second = await settled(api, tenant, hook["id"], event_id)
    assert second["outcome"]["message_id"] != first["outcome"]["message_id"]


async def test_listing_shows_each_events_outcome(worker_api: Api) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        scheme="github",
        action="room",
        config={"template": {"key": "{{ body.issue.id }}", "name": "{{ body.issue.title }}"}},
    )
    ok = await github_event(api, hook, signing.github_issue(1, "fine"))
    await settled(api, tenant, hook["id"], ok)
    bad = await github_event(api, hook, {"no": "issue"})
    await settled(api, tenant, hook["id"], bad)
    listed = {e["id"]: e for e in await events(api, tenant, hook["id"])}
    assert listed[ok]["status"] == "processed" and listed[ok]["outcome"]["room_id"]
    assert listed[bad]["status"] == "failed" and listed[bad]["error"]
    failed_only = await api.http.get(
        f"/api/v1/inbound-webhooks/{hook['id']}/events?status=failed", headers=tenant.auth
    )
    assert [e["id"] for e in failed_only.json()["data"]] == [bad]


async def test_room_action_is_idempotent_per_key_and_message_posts_to_config_room(
    worker_api: Api,
) -> None:
    api = worker_api
    tenant = await api.tenant()
    user = await api.user(tenant)
    rooms_hook = await make_hook(api, tenant, name="widget", action="room")
    secret, url = rooms_hook["secret"], rooms_hook["url"]

    async def send(body: dict[str, Any]) -> dict[str, Any]:
        raw = signing.dumps(body)
        from app.core.clock import utcnow

        r = await post(api, url, raw, signing.standard_webhooks(secret, raw, utcnow()))
        return await settled(api, tenant, rooms_hook["id"], r.json()["id"])

    ticket = {"key": "ticket-1", "name": "Ticket 1", "member_ids": [user["id"]]}
    a, b = await send(ticket), await send(ticket)
    assert a["outcome"]["room_id"] == b["outcome"]["room_id"]
    assert (a["outcome"]["room_created"], b["outcome"]["room_created"]) == (True, False)
    room = (
        await api.http.get(f"/api/v1/rooms/{a['outcome']['room_id']}", headers=tenant.auth)
    ).json()
    assert room["member_ids"] == [user["id"]]
    # The room deleted: the key gets a new room.
    await api.http.delete(f"/api/v1/rooms/{room['id']}", headers=tenant.auth)
    c = await send(ticket)
    assert c["outcome"]["room_created"] is True and c["outcome"]["room_id"] != room["id"]

    msg_hook = await make_hook(
        api,
        tenant,
        name="post",
        scheme="github",
        action="message",
        config={"room_id": c["outcome"]["room_id"]},
    )
    event_id = await github_event(api, msg_hook, {"content": "hello"})
    event = await settled(api, tenant, msg_hook["id"], event_id)
    assert event["outcome"]["room_id"] == c["outcome"]["room_id"]
    assert [m["content"] for m in await messages_of(api, tenant, c["outcome"]["room_id"])] == [
        "hello"
    ]


async def test_unknown_member_fails_the_room_event_with_the_reason(worker_api: Api) -> None:
    api = worker_api
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github", action="room")
    event_id = await github_event(
        api, hook, {"key": "x", "member_ids": ["01JD6Z3Q8W9X0Y1Z2A3B4C5D6E"]}
    )
    event = await settled(api, tenant, hook["id"], event_id)
    assert event["status"] == "failed" and "Unknown user" in event["error"]


async def test_notify_sends_through_the_relay_with_config_defaults_under_the_body(
    worker_api: Api,
) -> None:
    api = worker_api
    tenant = await api.tenant()
    user = await api.user(tenant, external_id="u")
    defaults = {"channels": ["websocket"], "websocket": {"event": "ticket.created"}}
    hook = await make_hook(
        api, tenant, scheme="github", action="notify", config={"defaults": defaults}
    )
    event_id = await github_event(api, hook, {"recipients": [{"external_id": "u"}]})
    event = await settled(api, tenant, hook["id"], event_id)
    assert event["status"] == "processed", event
    sent = await api.http.get(
        f"/api/v1/notifications/{event['outcome']['notification_id']}", headers=tenant.auth
    )
    assert sent.status_code == 200, sent.text
    [delivery] = sent.json()["deliveries"]
    assert delivery["channel"] == "websocket"
    assert delivery["recipient"]["user_id"] == user["id"]


async def test_notify_sends_a_past_send_at_now_and_fails_one_without_an_offset(
    worker_api: Api,
) -> None:
    # An event may be processed or replayed long after it arrived: its send_at then lies in
    # the past, which means now here (a direct POST /notifications/send refuses it).
    api = worker_api
    tenant = await api.tenant()
    await api.user(tenant, external_id="u")
    defaults = {"channels": ["websocket"], "websocket": {"event": "ticket.created"}}
    hook = await make_hook(
        api, tenant, scheme="github", action="notify", config={"defaults": defaults}
    )
    body = {"recipients": [{"external_id": "u"}], "send_at": "2020-01-01T00:00:00Z"}
    past = await settled(api, tenant, hook["id"], await github_event(api, hook, body))
    assert past["status"] == "processed", past
    sent = await api.http.get(
        f"/api/v1/notifications/{past['outcome']['notification_id']}", headers=tenant.auth
    )
    assert sent.json()["status"] != "scheduled"
    body["send_at"] = "2020-01-01T00:00:00"
    naive = await settled(api, tenant, hook["id"], await github_event(api, hook, body))
    assert naive["status"] == "failed" and "UTC offset" in naive["error"], naive


async def test_forward_relays_the_body_to_subscribed_endpoints_as_the_event_type(
    own_sqlite_url: str,
) -> None:
    async with running_receiver() as receiver:
        async for relay in running_relay(own_sqlite_url):
            api = relay.api
            tenant = await api.tenant()
            _, secret = await add_endpoint(
                relay.app, tenant, receiver.url("/forwarded"), ["ticket.created"]
            )
            hook = await make_hook(
                api,
                tenant,
                scheme="github",
                action="forward",
                config={"event_type": "ticket.created"},
            )
            event_id = await github_event(api, hook, {"ticket": 7})
            event = await settled(api, tenant, hook["id"], event_id)
            assert event["status"] == "processed", event
            await until(lambda: bool(receiver.requests), "the forwarded webhook", 10)
            [got] = receiver.requests
            message = Webhook(secret).verify(got.body, got.headers)
            assert message["type"] == "ticket.created"
            assert message["data"] == {"ticket": 7}


async def test_notify_is_delivered_to_the_recipients_open_websocket(db_url: str) -> None:
    async for relay in running_relay(db_url):
        api = relay.api
        tenant = await api.tenant()
        user = await api.user(tenant, external_id="agent-7")
        socket = await WsClient.open(relay.base, await api.login(tenant, user["id"]))
        try:
            hook = await make_hook(
                api,
                tenant,
                scheme="github",
                action="notify",
                config={"defaults": {"channels": ["websocket"]}},
            )
            event_id = await github_event(
                api,
                hook,
                {
                    "recipients": [{"external_id": "agent-7"}],
                    "websocket": {"event": "ticket.assigned", "data": {"ticket": 7}},
                },
            )
            event = await settled(api, tenant, hook["id"], event_id)
            assert event["status"] == "processed", event
            notification_id = event["outcome"]["notification_id"]
            _, data = await wait_for(socket.events, lambda e: e[0] == "notification", 10)
            assert data["notification_id"] == notification_id
            assert (data["event"], data["data"]) == ("ticket.assigned", {"ticket": 7})
            sent = await wait_for_status(api, tenant, notification_id, FINAL)
            assert sent["status"] == "delivered", sent
            [delivery] = sent["deliveries"]
            assert (delivery["channel"], delivery["status"]) == ("websocket", "delivered")
            assert delivery["recipient"]["user_id"] == user["id"]
        finally:
            await socket.close()
