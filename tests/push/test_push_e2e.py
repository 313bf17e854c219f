"""The push channel end to end in the embedded relay (SQLite, in-process worker): users
register subscriptions through the API, a send goes through the tenant's push route to a
real Web Push service (HTTPS, VAPID checked, payload decrypted with `http_ece`) or a real
FCM fake (OAuth JWT bearer flow), and gone subscriptions are removed.

Until the providers API lands, the tests store provider rows and the route directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from app.core.ids import new_id
from app.main import create_app
from app.providers.models import Provider, ProviderRoute
from app.runtime import Runtime
from tests.conftest import make_settings
from tests.notifications.relay import RELAY_SETTINGS, Relay, attempts, send, wait_for_status
from tests.support.api import Api, Tenant, bearer
from tests.support.fake_push import (
    FakeFcm,
    FakePushService,
    running_fcm,
    running_push_service,
    write_tls_files,
)
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process

SUBSCRIPTIONS = "/api/v1/me/push-subscriptions"
CONTENT = {
    "title": "Order shipped",
    "body": "A-1 is on its way",
    "url": "https://shop.example/orders/A-1",
    "data": {"order": "A-1", "items": 2},
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tls_files(tmp_path_factory.mktemp("push-tls"))


@pytest.fixture
async def relay(own_sqlite_url: str, tls: tuple[Path, Path]) -> AsyncIterator[Relay]:
    """The embedded relay, trusting the fake push service's certificate (PROVIDER_CA_FILE);
    WEBHOOK_ALLOW_PRIVATE_TARGETS (in RELAY_SETTINGS) lets it reach 127.0.0.1."""
    settings = make_settings(own_sqlite_url, **RELAY_SETTINGS, PROVIDER_CA_FILE=str(tls[0]))
    app = create_app(settings)
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
    ):
        yield Relay(Api(http, app=app), base, app)


@pytest.fixture
async def push_service(tls: tuple[Path, Path]) -> AsyncIterator[FakePushService]:
    async with running_push_service(tls) as fake:
        yield fake


@pytest.fixture
async def fcm() -> AsyncIterator[FakeFcm]:
    async with running_fcm() as fake:
        yield fake


def vapid_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


async def add_provider(
    app: FastAPI,
    tenant: Tenant,
    name: str,
    type_: str,
    settings: dict[str, Any],
    secrets: dict[str, str],
) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        session.add(
            Provider(
                id=new_id(),
                client_id=tenant.id,
                name=name,
                type=type_,
                channel="push",
                settings=settings,
                secrets_sealed={k: runtime.secret_box.seal(v) for k, v in secrets.items()},
            )
        )
        await session.commit()


async def set_route(app: FastAPI, tenant: Tenant, providers: list[str]) -> None:
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        session.add(ProviderRoute(client_id=tenant.id, channel="push", providers=providers))
        await session.commit()


async def webpush_tenant(relay: Relay) -> Tenant:
    tenant = await relay.api.tenant()
    await add_provider(
        relay.app,
        tenant,
        "browsers",
        "webpush",
        {"vapid_subject": "mailto:ops@shop.example", "ttl": 120},
        {"vapid_private_key": vapid_pem()},
    )
    await set_route(relay.app, tenant, ["browsers"])
    return tenant


async def user_with_key(api: Api, tenant: Tenant) -> tuple[str, dict[str, str]]:
    user = await api.user(tenant)
    return user["id"], bearer(await api.login(tenant, user["id"]))


async def subscribe(api: Api, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await api.http.post(SUBSCRIPTIONS, json=body, headers=auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


def push_body(user_id: str) -> dict[str, Any]:
    return {"channels": ["push"], "recipients": [{"user_id": user_id}], "push": CONTENT}


async def test_web_push_is_delivered_encrypted_and_signed(
    relay: Relay, push_service: FakePushService
) -> None:
    api = relay.api
    tenant = await webpush_tenant(relay)
    user_id, auth = await user_with_key(api, tenant)
    sub_id, subscription = push_service.subscribe()
    await subscribe(api, auth, subscription)
    sent = await send(api, tenant, push_body(user_id))
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "delivered", (done, push_service.refused)
    [delivery] = done["deliveries"]
    # The fake decrypted exactly the content sent (plus the ids a service worker tags by).
    [plaintext] = push_service.plaintexts(sub_id)
    assert orjson.loads(plaintext) == {
        **CONTENT,
        "notification_id": sent["id"],
        "delivery_id": delivery["id"],
    }
    [received] = push_service.received
    assert received.claims["aud"] == push_service.origin
    assert received.claims["sub"] == "mailto:ops@shop.example"
    assert received.headers["ttl"] == "120"
    [attempt] = await attempts(api, tenant, sent["id"])
    assert attempt["served_by"] == "browsers" and attempt["response_code"] == 201
    assert push_service.refused == []


async def test_a_user_without_subscriptions_is_skipped(relay: Relay) -> None:
    tenant = await webpush_tenant(relay)
    user_id, _ = await user_with_key(relay.api, tenant)
    sent = await send(relay.api, tenant, push_body(user_id))
    [delivery] = sent["deliveries"]
    assert delivery["status"] == "skipped"
    assert delivery["skip_reason"] == "the user has no push subscription"


async def test_gone_subscription_is_removed_and_the_delivery_fails(
    relay: Relay, push_service: FakePushService
) -> None:
    api = relay.api
    tenant = await webpush_tenant(relay)
    user_id, auth = await user_with_key(api, tenant)
    sub_id, subscription = push_service.subscribe()
    await subscribe(api, auth, subscription)
    push_service.answer(sub_id, 410)
    sent = await send(api, tenant, push_body(user_id))
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "failed"
    [attempt] = await attempts(api, tenant, sent["id"])
    assert attempt["response_code"] == 410
    assert "no live push subscription" in attempt["error"]
    assert (await api.http.get(SUBSCRIPTIONS, headers=auth)).json()["data"] == []


async def test_two_subscriptions_one_gone_is_delivered_and_the_gone_one_removed(
    relay: Relay, push_service: FakePushService
) -> None:
    api = relay.api
    tenant = await webpush_tenant(relay)
    user_id, auth = await user_with_key(api, tenant)
    live_id, live = push_service.subscribe()
    gone_id, gone = push_service.subscribe()
    kept = await subscribe(api, auth, live)
    await subscribe(api, auth, gone)
    push_service.answer(gone_id, 404)
    sent = await send(api, tenant, push_body(user_id))
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "delivered"
    assert len(push_service.plaintexts(live_id)) == 1
    [attempt] = await attempts(api, tenant, sent["id"])
    assert attempt["reply"] == "1 of 2 subscriptions accepted; 1 gone (removed)"
    listed = (await api.http.get(SUBSCRIPTIONS, headers=auth)).json()["data"]
    assert [s["id"] for s in listed] == [kept["id"]]


async def test_fcm_push_is_delivered_with_an_oauth_token(relay: Relay, fcm: FakeFcm) -> None:
    api = relay.api
    tenant = await api.tenant()
    await add_provider(
        relay.app,
        tenant,
        "android",
        "fcm",
        {"project_id": fcm.project_id, "base_url": fcm.base_url, "token_url": fcm.token_url},
        {"service_account_json": fcm.service_account_json()},
    )
    await set_route(relay.app, tenant, ["android"])
    user_id, auth = await user_with_key(api, tenant)
    await subscribe(api, auth, {"fcm_token": "device-1:APA91b"})
    sent = await send(api, tenant, push_body(user_id))
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "delivered", (done, fcm.refused)
    [message] = fcm.messages
    [delivery] = done["deliveries"]
    assert message == {
        "token": "device-1:APA91b",
        "notification": {"title": "Order shipped", "body": "A-1 is on its way"},
        "data": {
            "order": "A-1",
            "items": "2",
            "url": "https://shop.example/orders/A-1",
            "notification_id": sent["id"],
            "delivery_id": delivery["id"],
        },
    }
    [attempt] = await attempts(api, tenant, sent["id"])
    assert attempt["served_by"] == "android"
    assert attempt["reply"].startswith(f"projects/{fcm.project_id}/messages/")
    # The token is cached: a second send exchanges nothing; a revoked token is renewed once.
    again = await send(api, tenant, push_body(user_id))
    await wait_for_status(api, tenant, again["id"], {"delivered"})
    assert fcm.exchanges == 1
    fcm.revoke_tokens()
    third = await send(api, tenant, push_body(user_id))
    assert (await wait_for_status(api, tenant, third["id"], {"delivered", "failed"}))[
        "status"
    ] == "delivered"
    assert fcm.exchanges == 2 and fcm.refused == ["bearer"]


async def test_fcm_unregistered_token_is_removed(relay: Relay, fcm: FakeFcm) -> None:
    api = relay.api
    tenant = await api.tenant()
    await add_provider(
        relay.app,
        tenant,
        "android",
        "fcm",
        {"project_id": fcm.project_id, "base_url": fcm.base_url, "token_url": fcm.token_url},
        {"service_account_json": fcm.service_account_json()},
    )
    await set_route(relay.app, tenant, ["android"])
    user_id, auth = await user_with_key(api, tenant)
    await subscribe(api, auth, {"fcm_token": "stale-device"})
    fcm.unregistered.add("stale-device")
    sent = await send(api, tenant, push_body(user_id))
    done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "failed"
    assert (await api.http.get(SUBSCRIPTIONS, headers=auth)).json()["data"] == []


async def test_preferences_and_analytics_know_the_push_channel(
    relay: Relay, push_service: FakePushService
) -> None:
    api = relay.api
    tenant = await webpush_tenant(relay)
    user_id, auth = await user_with_key(api, tenant)
    _, subscription = push_service.subscribe()
    await subscribe(api, auth, subscription)
    delivered = await send(api, tenant, push_body(user_id))
    await wait_for_status(api, tenant, delivered["id"], {"delivered"})
    off = await api.http.put(
        "/api/v1/me/preferences", json={"channels": {"push": False}}, headers=auth
    )
    assert off.status_code == 200, off.text
    muted = await send(api, tenant, push_body(user_id))
    [delivery] = muted["deliveries"]
    assert delivery["status"] == "skipped" and "preference" in delivery["skip_reason"]
    summary = (await api.http.get("/api/v1/analytics/summary", headers=tenant.auth)).json()
    assert summary["deliveries"]["by_channel"]["push"] == {"delivered": 1, "skipped": 1}, summary
