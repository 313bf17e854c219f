"""`/providers` and `/routing/{channel}` on both databases: settings validated by the type,
secrets sealed and never answered, address policies, names unique per tenant, another
tenant's provider a 404, routes naming only the channel's providers, a routed provider kept
from deletion, and `/providers/{id}/test` against a real aiosmtpd server."""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from app.main import create_app
from app.providers.base import (
    BaseProviderType,
    HttpProviderSettings,
    ProviderAccount,
    ProviderMessage,
    ProviderOutcome,
    ProviderSettings,
)
from tests.channels.test_email import Recorder, SmtpHost
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant
from tests.support.processes import free_port

PATH = "/api/v1/providers"
PUBLIC_HOST = "93.184.215.14"  # a public literal: passes the address policies without DNS
PASSWORD = "smtp-pa55word-Qv3"
API_KEY = "key-5ecret-Mg7"


class EchoSettings(HttpProviderSettings):
    api_key: SecretStr
    region: str = "eu"
    webhook_signing_key: SecretStr | None = None


class EchoType(BaseProviderType):
    """A test HTTP provider type (never sends here): its settings are what matters."""

    type = "echo"
    channel = "sms"
    settings_model: builtins.type[ProviderSettings] = EchoSettings

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        raise AssertionError("not sent in these tests")

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        return "echo"


def _install_echo(api: Api) -> None:
    assert api.app is not None
    api.app.state.runtime.provider_types["echo"] = EchoType()


def smtp_body(name: str = "smtp-main", **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "smtp",
        "settings": {
            "host": PUBLIC_HOST,
            "port": 587,
            "username": "relay",
            "password": PASSWORD,
            "from_email": "noreply@shop.example",
            **settings,
        },
    }


async def create(api: Api, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.http.post(PATH, json=body, headers=tenant.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
async def private_api(db_url: str) -> AsyncIterator[Api]:
    """A deployment with SMTP_ALLOW_PRIVATE_TARGETS=true (servers on 127.0.0.1)."""
    app = create_app(
        make_settings(db_url, SMTP_ALLOW_PRIVATE_TARGETS=True), run_embedded_worker=False
    )
    async for http in app_client(app):
        yield Api(http, app=app)


@pytest.fixture
def smtp_host() -> Iterator[SmtpHost]:
    host = SmtpHost(Recorder())
    yield host
    host.stop()


async def test_a_provider_is_created_shown_and_its_secret_never_answered(api: Api) -> None:
    tenant = await api.tenant()
    shown = await create(api, tenant, smtp_body())
    assert (shown["type"], shown["channel"], shown["enabled"]) == ("smtp", "email", True)
    assert shown["secret_fields"] == ["password"]
    assert shown["settings"]["host"] == PUBLIC_HOST and "password" not in shown["settings"]
    got = await api.http.get(f"{PATH}/{shown['id']}", headers=tenant.auth)
    listed = await api.http.get(PATH, headers=tenant.auth)
    assert got.status_code == 200 and listed.status_code == 200
    assert [p["id"] for p in listed.json()["data"]] == [shown["id"]]
    for answer in (json.dumps(shown), got.text, listed.text):
        assert PASSWORD not in answer

    # At rest: sealed, and the runtime's SecretBox opens it.
    assert api.app is not None
    runtime = api.app.state.runtime
    async with runtime.db.session() as session:
        row = (
            await session.execute(
                text("SELECT settings, secrets_sealed FROM providers WHERE id = :i"),
                {"i": shown["id"]},
            )
        ).one()
    assert PASSWORD not in repr(row)
    sealed = row[1] if isinstance(row[1], dict) else json.loads(row[1])
    assert runtime.secret_box.open(sealed["password"]) == PASSWORD


async def test_patch_merges_settings_keeps_secrets_and_clears_with_null(api: Api) -> None:
    tenant = await api.tenant()
    _install_echo(api)
    body = {
        "name": "echo",
        "type": "echo",
        "settings": {
            "base_url": "https://93.184.215.14/api",
            "api_key": API_KEY,
            "webhook_signing_key": "whk-1",
        },
    }
    created = await create(api, tenant, body)
    assert created["secret_fields"] == ["api_key", "webhook_signing_key"]
    r = await api.http.patch(
        f"{PATH}/{created['id']}",
        json={"settings": {"region": "us", "webhook_signing_key": None}, "enabled": False},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["settings"]["region"] == "us" and patched["enabled"] is False
    assert patched["secret_fields"] == ["api_key"]  # kept; the optional one cleared
    assert API_KEY not in r.text
    # A required secret cannot be cleared: 422 naming it, nothing changed.
    r = await api.http.patch(
        f"{PATH}/{created['id']}", json={"settings": {"api_key": None}}, headers=tenant.auth
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "settings", "api_key"]
    renamed = await api.http.patch(
        f"{PATH}/{created['id']}", json={"name": "echo-2"}, headers=tenant.auth
    )
    assert (renamed.status_code, renamed.json()["name"]) == (200, "echo-2")
    assert renamed.json()["secret_fields"] == ["api_key"]


async def test_unknown_type_and_invalid_settings_are_422_with_the_fields(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json={**smtp_body(), "type": "pigeon"}, headers=tenant.auth)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem")
    assert "pigeon" in r.json()["detail"] and "smtp" in r.json()["detail"]
    bad = smtp_body(port=0, from_email="nope", host="smtp.example.com\r\nRCPT TO:<x@y>")
    r = await api.http.post(PATH, json=bad, headers=tenant.auth)
    assert r.status_code == 422, r.text
    locs = sorted(tuple(e["loc"]) for e in r.json()["errors"])
    assert locs == [
        ("body", "settings", "from_email"),
        ("body", "settings", "host"),
        ("body", "settings", "port"),
    ]
    r = await api.http.post(PATH, json=smtp_body(password="x\r\nAUTH"), headers=tenant.auth)
    assert r.status_code == 422 and "x\r\nAUTH" not in r.text
    assert (await api.http.get(PATH, headers=tenant.auth)).json()["data"] == []


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("https://127.0.0.1/api", "WEBHOOK_ALLOW_PRIVATE_TARGETS"),
        ("http://169.254.169.254/latest", "never allowed"),
        ("ftp://93.184.215.14/", "http"),
    ],
)
async def test_an_http_providers_base_url_is_held_to_the_webhook_policy(
    api: Api, base_url: str, why: str
) -> None:
    tenant = await api.tenant()
    _install_echo(api)
    body = {"name": "echo", "type": "echo", "settings": {"base_url": base_url, "api_key": "k"}}
    r = await api.http.post(PATH, json=body, headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert "base_url" in r.json()["detail"] and why in r.json()["detail"]
    assert r.json()["errors"][0]["loc"] == ["body", "settings", "base_url"]


async def test_an_smtp_host_is_held_to_the_smtp_policy(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json=smtp_body(host="127.0.0.1"), headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert "settings.host" in r.json()["detail"]
    assert "SMTP_ALLOW_PRIVATE_TARGETS" in r.json()["detail"]


async def test_names_are_unique_per_tenant_and_others_ids_are_404(api: Api) -> None:
    owner, intruder = await api.tenant(), await api.tenant()
    created = await create(api, owner, smtp_body())
    r = await api.http.post(PATH, json=smtp_body(), headers=owner.auth)
    assert r.status_code == 409, r.text
    await create(api, intruder, smtp_body())  # the same name in another tenant is fine
    url = f"{PATH}/{created['id']}"
    for method, body in (
        ("GET", None),
        ("PATCH", {"enabled": False}),
        ("DELETE", None),
        ("POST", {}),
    ):
        target = f"{url}/test" if method == "POST" else url
        r = await api.http.request(method, target, json=body, headers=intruder.auth)
        assert r.status_code == 404, (method, r.text)
    # Sentinel: the owner still has it, unchanged.
    got = await api.http.get(url, headers=owner.auth)
    assert (got.status_code, got.json()["enabled"]) == (200, True)


async def test_routing_names_only_the_channels_providers_and_guards_deletion(api: Api) -> None:
    tenant = await api.tenant()
    _install_echo(api)
    main = await create(api, tenant, smtp_body("smtp-main"))
    await create(api, tenant, smtp_body("smtp-bulk"))
    await create(
        api,
        tenant,
        {
            "name": "texts",
            "type": "echo",
            "settings": {"base_url": "https://93.184.215.14", "api_key": "k"},
        },
    )
    route = "/api/v1/routing/email"
    unset = await api.http.get(route, headers=tenant.auth)
    assert unset.status_code == 200, unset.text
    assert (unset.json()["default"], unset.json()["providers"]) == (
        True,
        ["smtp-main", "smtp-bulk"],
    )
    for body, why in (
        ({"providers": ["nobody"]}, "nobody"),
        ({"providers": ["texts"]}, "'sms'"),
        ({"providers": ["smtp-main", "smtp-main"]}, "twice"),
        ({"providers": ["smtp-main"], "bulk": {"min_recipients": 0, "providers": ["x"]}}, ""),
    ):
        r = await api.http.put(route, json=body, headers=tenant.auth)
        assert r.status_code == 422, (body, r.text)
        assert why in r.json()["detail"]
    body = {"providers": ["smtp-main"], "bulk": {"min_recipients": 500, "providers": ["smtp-bulk"]}}
    r = await api.http.put(route, json=body, headers=tenant.auth)
    assert r.status_code == 200, r.text
    got = (await api.http.get(route, headers=tenant.auth)).json()
    assert (got["default"], got["providers"], got["bulk"]) == (
        False,
        body["providers"],
        body["bulk"],
    )
    unknown = await api.http.get("/api/v1/routing/carrier-pigeon", headers=tenant.auth)
    assert unknown.status_code == 422

    r = await api.http.delete(f"{PATH}/{main['id']}", headers=tenant.auth)
    assert r.status_code == 409 and "/routing/email" in r.json()["detail"]
    await api.http.put(route, json={"providers": ["smtp-bulk"]}, headers=tenant.auth)
    assert (await api.http.delete(f"{PATH}/{main['id']}", headers=tenant.auth)).status_code == 204
    assert (await api.http.get(f"{PATH}/{main['id']}", headers=tenant.auth)).status_code == 404


async def test_the_test_sends_through_a_real_server_or_says_why_not(
    private_api: Api, smtp_host: SmtpHost
) -> None:
    api = private_api
    tenant = await api.tenant()
    settings = {"host": "127.0.0.1", "port": smtp_host.port, "security": "none"}
    ok = await create(api, tenant, smtp_body("up", username=None, password=None, **settings))
    r = await api.http.post(
        f"{PATH}/{ok['id']}/test", json={"to": "ops@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and "ops@shop.example" in r.json()["detail"]
    [message] = smtp_host.recorder.messages
    assert message["To"] == "ops@shop.example"
    r = await api.http.post(f"{PATH}/{ok['id']}/test", headers=tenant.auth)
    assert r.status_code == 200 and "connected" in r.json()["detail"], r.text
    assert len(smtp_host.recorder.messages) == 1  # without `to`, nothing is sent

    down = {**settings, "port": free_port()}
    dead = await create(api, tenant, smtp_body("down", username=None, password=None, **down))
    r = await api.http.post(
        f"{PATH}/{dead['id']}/test", json={"to": "ops@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "down:" in r.json()["detail"] and "cannot connect" in r.json()["detail"]
