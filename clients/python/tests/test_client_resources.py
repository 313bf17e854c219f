"""The REST surface an integrator uses, against the live server: errors carry the problem
document; auth, rooms, inbox, notifications, endpoints and inbound hooks round-trip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from conftest import Server

from chatapi_client import (
    AsyncChatAPI,
    AuthenticationError,
    ChatAPI,
    NotFoundError,
    ValidationError,
)


def test_errors_are_exceptions_carrying_the_problem(server: Server, master_key: str) -> None:
    with ChatAPI(server.base, master_key) as chat:
        with pytest.raises(NotFoundError) as missing:
            chat.rooms.get("01NOPE")
        with pytest.raises(ValidationError) as invalid:
            chat.rooms.create(type="nonsense")
    with ChatAPI(server.base, "ck_bad_key") as bad, pytest.raises(AuthenticationError) as denied:
        bad.clients.me()
    assert missing.value.status == 404 and missing.value.problem["status"] == 404
    assert invalid.value.status == 422 and invalid.value.errors
    assert denied.value.status == 401 and denied.value.problem["title"]


def test_rooms_messages_inbox_and_preferences(server: Server, master_key: str) -> None:
    with ChatAPI(server.base, master_key) as chat:
        me = chat.clients.me()
        user = chat.users.upsert("inbox-user", email="u@example.com")
        assert chat.users.get(user.id).email == "u@example.com"
        room = chat.rooms.create(name="r", member_ids=[user.id], metadata={"k": 1})
        assert [m.user_id for m in chat.rooms.members(room.id)] == [user.id]
        sent = chat.notifications.send(
            channels=["websocket"],
            recipients=[{"user_id": user.id}],
            websocket={"event": "order.shipped", "data": {"n": 1}},
        )
        assert chat.notifications.get(sent.id).id == sent.id
        assert isinstance(list(chat.notifications.attempts(sent.id)), list)
        key = chat.auth.login(user_id=user.id).api_key
        chat.users.replace_preferences(user.id, {"channels": {"email": False}, "events": {}})
    assert me.slug
    with ChatAPI(server.base, key) as as_user:
        assert as_user.auth.me().kind == "user"
        message = as_user.messages.send(room.id, "hi")
        as_user.rooms.mark_read(room.id, message.seq)
        assert [r.id for r in as_user.rooms.list()] == [room.id]
        [item] = list(as_user.inbox.list())
        assert item.notification_id == sent.id
        assert as_user.inbox.mark_read(item.id).read_at is not None
        assert as_user.inbox.count().unread == 0
        assert as_user.inbox.preferences().channels == {"email": False}
        as_user.auth.logout()
        with pytest.raises(AuthenticationError):
            list(as_user.rooms.list())


def test_endpoints_hooks_and_notification_controls(server: Server, master_key: str) -> None:
    with ChatAPI(server.base, master_key) as chat:
        endpoint = chat.webhook_endpoints.create("http://127.0.0.1:9/x", description="d")
        assert chat.webhook_endpoints.update(endpoint.id, disabled=True).disabled
        rotated = chat.webhook_endpoints.rotate_secret(endpoint.id, grace_seconds=0)
        assert rotated.secret and rotated.secret != endpoint.secret
        assert [e.id for e in chat.webhook_endpoints.list()] == [endpoint.id]
        chat.webhook_endpoints.delete(endpoint.id)
        hook = chat.inbound_hooks.create("orders", "forward", config={"event_type": "x.y"})
        assert hook.secret and [h.id for h in chat.inbound_hooks.list()] == [hook.id]
        assert list(chat.inbound_hooks.events(hook.id)) == []
        user = chat.users.upsert("later")
        scheduled = chat.notifications.send(
            channels=["websocket"],
            recipients=[{"user_id": user.id}],
            websocket={"event": "e", "data": {}},
            send_at=datetime.now(timezone.utc) + timedelta(days=1),
        )
        assert chat.notifications.cancel(scheduled.id).status == "canceled"
        assert [n.id for n in chat.notifications.list(status="canceled")] == [scheduled.id]
        with pytest.raises(NotFoundError):
            chat.email_config.get()


def test_login_on_two_devices_keeps_both(server: Server, master_key: str) -> None:
    with ChatAPI(server.base, master_key) as chat:
        user = chat.users.upsert("two-devices")
        phone = chat.auth.login(user_id=user.id, device_id="phone")
        laptop = chat.auth.login(user_id=user.id, device_id="laptop")
    with ChatAPI(server.base, phone.api_key) as a, ChatAPI(server.base, laptop.api_key) as b:
        assert a.auth.me().kind == b.auth.me().kind == "user"


async def test_a_connect_token_opens_a_socket(server: Server, master_key: str) -> None:
    async with AsyncChatAPI(server.base, master_key) as chat:
        user = await chat.users.upsert("token-user")
        token = await chat.auth.connect_token(user.id)
        assert token.token
        room = await chat.rooms.create(name="t", member_ids=[user.id])
        conn = await chat.connect("websocket", connect_token=True, user_id=user.id)
        try:
            await chat.messages.send(room.id, "via token")
            async for event in conn:
                if event.name == "message.created":
                    assert event.data["content"] == "via token"
                    break
        finally:
            await conn.close()


def test_an_injected_httpx_client_carries_every_request(server: Server, master_key: str) -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    with httpx.Client(base_url=server.base, event_hooks={"request": [record]}) as http:
        chat = ChatAPI(api_key=master_key, http=http)
        assert chat.clients.me().slug
        chat.close()  # not ours to close: the caller's client stays usable
        assert http.get("/health/live").status_code == 200
    assert seen == ["GET /api/v1/clients/me", "GET /health/live"]


async def test_an_injected_async_httpx_client_carries_every_request(
    server: Server, master_key: str
) -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        chat = AsyncChatAPI(server.base, master_key, http=http)
        assert [u async for u in chat.users.list()] == []
        await chat.close()
        assert not http.is_closed
    assert seen == ["GET /api/v1/users"]
