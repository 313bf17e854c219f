"""Another tenant's object is a 404 on every endpoint that takes an id.

The cases come from the app's route table, so a new endpoint with a path parameter fails
this test until its parameter is known here: isolation can't be forgotten.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from app.core.clock import utcnow
from app.main import create_app
from app.providers import suppressions
from tests.conftest import make_settings
from tests.inbound import signing
from tests.inbound.conftest import make_hook, post
from tests.support.api import Api, Tenant

# Routes addressed by something other than a tenant-owned id.
# `/routing/{channel}` is addressed by a channel name: each tenant reads and sets its own.
# `/provider-events/...` is a provider's, addressed by the tenant's slug and signed by it.
NOT_TENANT_OBJECTS = {
    "/api/v1/webhooks/{client_slug}/{name}",
    "/api/v1/routing/{channel}",
    "/api/v1/provider-events/{client_slug}/{provider_name}",
}

ObjectMaker = Callable[[Api, Tenant], Awaitable[dict[str, str]]]

# Valid bodies, so each request reaches the object lookup instead of stopping at validation.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/members"): {"user_ids": ["{intruder_user}"]},
    ("POST", "/messages"): {"content": "intrusion"},
    ("PATCH", "/messages/{message_id}"): {"content": "intrusion"},
    ("POST", "/read"): {"seq": 1},
    ("PUT", "/preferences"): {"channels": {"email": False}},
    ("POST", "/recover"): {"since": "2020-01-01T00:00:00Z"},
}
# Routes about the caller's own user: a master key is refused (403, it has no user); a user
# key of another tenant must get 404.
OWN_USER_PREFIX = "/api/v1/me/"
# The operator's routes (admin key): every tenant key is refused (403), whichever client.
ADMIN_ONLY = {"/api/v1/clients/{client_id}"}


def _body_for(method: str, path: str, intruder_user: str) -> dict[str, Any]:
    for (m, suffix), body in BODIES.items():
        if m == method and path.endswith(suffix):
            return {
                k: [intruder_user if v == "{intruder_user}" else v for v in value]
                if isinstance(value, list)
                else value
                for k, value in body.items()
            }
    return {}


async def _objects_of(api: Api, owner: Tenant) -> dict[str, str]:
    """One object of each kind owned by `owner`, by path parameter name."""
    user = await api.user(owner)
    user_key_value = await api.login(owner, user["id"])
    keys = (await api.http.get("/api/v1/keys", headers=owner.auth)).json()["data"]
    user_key = next(k for k in keys if k["kind"] == "user")
    room = await api.room(owner, member_ids=[user["id"]])
    message = (await api.send(owner, room["id"], "owned")).json()
    endpoint = await api.http.post(
        "/api/v1/webhook-endpoints", json={"url": "https://93.184.215.14/hook"}, headers=owner.auth
    )
    assert endpoint.status_code == 201, endpoint.text
    provider = await api.http.post(
        "/api/v1/providers",
        json={
            "name": "owned",
            "type": "smtp",
            "settings": {"host": "93.184.215.14", "port": 587, "from_email": "a@b.example"},
        },
        headers=owner.auth,
    )
    assert provider.status_code == 201, provider.text
    sent = await api.http.post(
        "/api/v1/notifications/send",
        json={
            "channels": ["websocket"],
            "recipients": [{"user_id": user["id"]}],
            "websocket": {"event": "owned", "data": {}},
        },
        headers=owner.auth,
    )
    assert sent.status_code == 202, sent.text
    hook = await make_hook(api, owner, name="owned", scheme="github")
    body = signing.dumps({"owned": True})
    event = await post(api, hook["url"], body, signing.github(hook["secret"], body))
    assert event.status_code == 202, event.text
    [websocket_delivery] = sent.json()["deliveries"]
    subscription = await api.http.post(
        "/api/v1/me/push-subscriptions",
        json={"fcm_token": "owned-device"},
        headers={"Authorization": f"Bearer {user_key_value}"},
    )
    assert subscription.status_code == 201, subscription.text
    # A suppressed address (as a provider's hard bounce leaves it).
    address = "bounced@owner.example"
    runtime = api.app.state.runtime if api.app is not None else None
    assert runtime is not None
    async with runtime.db.session() as session:
        await suppressions.add(
            session, owner.id, address, reason="hard_bounce", channel="email", now=utcnow()
        )
        await session.commit()
    # Last: a catalog would make later webhook sends of this tenant checked.
    event_type = await api.http.post(
        "/api/v1/event-types", json={"name": "owned.event"}, headers=owner.auth
    )
    assert event_type.status_code == 201, event_type.text
    return {
        "name": event_type.json()["name"],
        # The user's inbox item of the notification (it shares the delivery's id).
        "item_id": websocket_delivery["id"],
        "endpoint_id": endpoint.json()["id"],
        "provider_id": provider.json()["id"],
        "notification_id": sent.json()["id"],
        "hook_id": hook["id"],
        "event_id": event.json()["id"],
        "user_id": user["id"],
        "key_id": user_key["id"],
        "room_id": room["id"],
        "message_id": message["id"],
        "client_id": owner.id,
        "subscription_id": subscription.json()["id"],
        "address": address,
    }


def _routes_with_ids() -> list[tuple[str, str, list[str]]]:
    """Every (method, path, params) with a path parameter, from the app's OpenAPI route table."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"), run_embedded_worker=False)
    found = []
    for path, operations in app.openapi()["paths"].items():
        params = re.findall(r"{(\w+)}", path)
        if not params or path in NOT_TENANT_OBJECTS:
            continue
        for method in sorted(operations):
            found.append((method.upper(), path, params))
    return found


def test_route_table_has_id_routes() -> None:
    assert len(_routes_with_ids()) >= 4


async def test_another_tenants_ids_are_404_on_every_route(api: Api) -> None:
    owner = await api.tenant()
    intruder = await api.tenant()
    objects = await _objects_of(api, owner)
    intruder_user = await api.user(intruder)
    intruder_key = await api.login(intruder, intruder_user["id"])
    failures: list[str] = []
    for method, path, params in _routes_with_ids():
        unknown = [p for p in params if p not in objects]
        assert not unknown, f"{method} {path}: teach this test to make a {unknown} object"
        url = path
        for p in params:
            url = url.replace("{" + p + "}", objects[p])
        body = _body_for(method, path, intruder_user["id"])
        # (`intruder.auth` is a property: a new dict each time, so compare by a flag.)
        for is_master, headers in (
            (True, intruder.auth),
            (False, {"Authorization": f"Bearer {intruder_key}"}),
        ):
            r = await api.http.request(method, url, headers=headers, json=body)
            # A user key may be refused by scope/kind first (403 says nothing about the object);
            # a master key must get 404, and nobody may get a success.
            allowed = {404} if is_master else {403, 404}
            if path.startswith(OWN_USER_PREFIX):
                allowed = {403} if is_master else {404}
            if path in ADMIN_ONLY:
                allowed = {403}
            if r.status_code == 422:
                failures.append(f"{method} {path}: add a valid body to BODIES ({r.text[:80]})")
            elif r.status_code not in allowed:
                failures.append(f"{method} {url} -> {r.status_code} {r.json().get('detail')}")
    assert failures == []
    # The owner still sees its objects: the 404s above were isolation, not absence.
    for path in (
        f"/api/v1/users/{objects['user_id']}",
        f"/api/v1/rooms/{objects['room_id']}",
        f"/api/v1/rooms/{objects['room_id']}/messages",
        f"/api/v1/webhook-endpoints/{objects['endpoint_id']}",
        f"/api/v1/providers/{objects['provider_id']}",
        f"/api/v1/users/{objects['user_id']}/notifications",
        f"/api/v1/users/{objects['user_id']}/preferences",
        f"/api/v1/event-types/{objects['name']}",
    ):
        assert (await api.http.get(path, headers=owner.auth)).status_code == 200, path
    # Lists are the caller's own: the intruder sees no suppression of the owner's.
    listed = await api.http.get("/api/v1/suppressions", headers=intruder.auth)
    assert listed.status_code == 200 and listed.json()["data"] == []
    owned = (await api.http.get("/api/v1/suppressions", headers=owner.auth)).json()["data"]
    assert [s["address"] for s in owned] == [objects["address"]]
