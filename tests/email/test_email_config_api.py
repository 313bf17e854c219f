"""`/email-config` on both databases: sealed passwords never shown, validation, a real test
message through aiosmtpd, and the opened configuration the e-mail deliveries use."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from app.core.crypto import SecretBox
from app.core.db import Database
from app.email.service import TEST_SUBJECT, config_for_delivery
from app.main import create_app
from tests.channels.test_email import Recorder, SmtpHost
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant
from tests.support.processes import free_port

PATH = "/api/v1/email-config"
# Public address literals: they pass the SMTP address policy without DNS (nothing connects
# to them here). The servers the tests send through are on 127.0.0.1: `private_api`.
PUBLIC_HOST = "93.184.215.14"
PUBLIC_FALLBACK_HOST = "93.184.215.15"
PRIMARY_PASSWORD = "primary-pa55word-Zq9"
FALLBACK_PASSWORD = "fallback-pa55word-Xk7"


def _runtime(api: Api) -> Any:
    assert api.app is not None
    return api.app.state.runtime


def _config(**fields: Any) -> dict[str, Any]:
    return {
        "host": PUBLIC_HOST,
        "port": 587,
        "username": "relay",
        "password": PRIMARY_PASSWORD,
        "security": "starttls",
        "from_email": "noreply@shop.example",
        "from_name": "Shop",
        **fields,
    }


FALLBACK = {
    "host": PUBLIC_FALLBACK_HOST,
    "port": 465,
    "username": "backup",
    "password": FALLBACK_PASSWORD,
    "security": "tls",
    "from_email": "noreply@shop.example",
}


async def _put(api: Api, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.http.put(PATH, json=body, headers=tenant.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture
async def private_api(db_url: str) -> AsyncIterator[Api]:
    """The API of a deployment with SMTP_ALLOW_PRIVATE_TARGETS=true (servers on 127.0.0.1)."""
    app = create_app(
        make_settings(db_url, SMTP_ALLOW_PRIVATE_TARGETS=True), run_embedded_worker=False
    )
    async for http in app_client(app):
        yield Api(http, app=app)


@pytest.fixture
def smtp_hosts() -> Iterator[list[SmtpHost]]:
    hosts: list[SmtpHost] = []
    yield hosts
    for host in hosts:
        host.stop()


async def test_passwords_are_never_returned_nor_stored_in_clear(api: Api) -> None:
    tenant = await api.tenant()
    shown = await _put(api, tenant, _config(fallback=FALLBACK))
    got = await api.http.get(PATH, headers=tenant.auth)
    assert got.status_code == 200
    for body in (shown, got.json()):
        assert body["password_set"] is True and body["fallback"]["password_set"] is True
        assert "password" not in body and "password" not in body["fallback"]
        assert body["host"] == PUBLIC_HOST and body["fallback"]["port"] == 465
    assert PRIMARY_PASSWORD not in got.text and FALLBACK_PASSWORD not in got.text

    # Stored as the tenant's `smtp` providers, each password sealed under `secrets_sealed`.
    db: Database = _runtime(api).db
    async with db.session() as session:
        rows = {
            r["name"]: dict(r)
            for r in (
                await session.execute(
                    text("SELECT * FROM providers WHERE client_id = :c"), {"c": tenant.id}
                )
            ).mappings()
        }
    raw = repr(rows)
    assert PRIMARY_PASSWORD not in raw and FALLBACK_PASSWORD not in raw
    assert sorted(rows) == ["smtp", "smtp-fallback"]
    box: SecretBox = _runtime(api).secret_box
    sealed = rows["smtp"]["secrets_sealed"]
    sealed = json.loads(sealed) if isinstance(sealed, str) else sealed
    assert box.open(sealed["password"]) == PRIMARY_PASSWORD

    async with db.session() as session:
        opened = await config_for_delivery(session, box, tenant.id)
    assert opened is not None and opened.fallback is not None
    assert (opened.primary.password, opened.primary.username) == (PRIMARY_PASSWORD, "relay")
    assert (opened.primary.security, opened.primary.port) == ("starttls", 587)
    assert (opened.fallback.password, opened.fallback.host) == (
        FALLBACK_PASSWORD,
        PUBLIC_FALLBACK_HOST,
    )
    assert opened.fallback.security == "tls"


async def test_put_replaces_and_a_missing_password_is_not_set(api: Api) -> None:
    tenant = await api.tenant()
    await _put(api, tenant, _config(fallback=FALLBACK))
    shown = await _put(api, tenant, _config(password=None, host="93.184.215.16"))
    assert shown["password_set"] is False and shown["fallback"] is None
    async with _runtime(api).db.session() as session:
        opened = await config_for_delivery(session, _runtime(api).secret_box, tenant.id)
    assert opened is not None and opened.primary.password is None and opened.fallback is None
    assert opened.primary.host == "93.184.215.16"


async def test_no_config_is_404_and_none_for_delivery(api: Api) -> None:
    tenant = await api.tenant()
    for r in (
        await api.http.get(PATH, headers=tenant.auth),
        await api.http.post(f"{PATH}/test", json={"to": "a@b.example"}, headers=tenant.auth),
        await api.http.delete(PATH, headers=tenant.auth),
    ):
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
    async with _runtime(api).db.session() as session:
        assert await config_for_delivery(session, _runtime(api).secret_box, tenant.id) is None


async def test_delete_removes_the_config(api: Api) -> None:
    tenant = await api.tenant()
    await _put(api, tenant, _config())
    assert (await api.http.delete(PATH, headers=tenant.auth)).status_code == 204
    assert (await api.http.get(PATH, headers=tenant.auth)).status_code == 404


@pytest.mark.parametrize(
    "bad",
    [
        {"host": "smtp.example.com\r\nRCPT TO:<x@y>"},
        {"host": "bad host"},
        {"port": 0},
        {"port": 70000},
        {"port": True},
        {"security": "ssl"},
        {"from_email": "not-an-address"},
        {"from_email": "a@b.example\r\nBcc: victim@x.example"},
        {"from_name": "Shop\r\nBcc: victim@x.example"},
        {"username": "relay\nAUTH"},
        {"fallback": {**FALLBACK, "from_name": "x\ny"}},
        {"fallback": {**FALLBACK, "security": "plain"}},
        {"unknown": 1},
    ],
)
async def test_invalid_or_injecting_configs_are_refused(api: Api, bad: dict[str, Any]) -> None:
    tenant = await api.tenant()
    r = await api.http.put(PATH, json=_config(**bad), headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert r.json()["errors"]
    assert (await api.http.get(PATH, headers=tenant.auth)).status_code == 404


async def test_test_email_arrives_through_a_real_smtp_server(
    private_api: Api, smtp_hosts: list[SmtpHost]
) -> None:
    host = SmtpHost(Recorder())
    smtp_hosts.append(host)
    tenant = await private_api.tenant()
    await _put(
        private_api,
        tenant,
        _config(host="127.0.0.1", port=host.port, security="none", username=None, password=None),
    )
    r = await private_api.http.post(
        f"{PATH}/test", json={"to": "ops@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["ok"], result["code"], result["served_by"], result["error"]) == (
        True,
        250,
        "primary",
        None,
    )
    assert "queued as abc123" in result["reply"]
    [message] = host.recorder.messages
    assert message["To"] == "ops@shop.example"
    assert message["Subject"] == TEST_SUBJECT
    assert "noreply@shop.example" in message["From"]


async def test_test_email_goes_through_the_fallback_when_the_primary_is_down(
    private_api: Api, smtp_hosts: list[SmtpHost]
) -> None:
    host = SmtpHost(Recorder())
    smtp_hosts.append(host)
    tenant = await private_api.tenant()
    down = {"host": "127.0.0.1", "port": free_port(), "security": "none", "password": None}
    fallback = {**FALLBACK, "host": "127.0.0.1", "port": host.port, "security": "none"}
    fallback.update(username=None, password=None)
    await _put(private_api, tenant, _config(**down, username=None, fallback=fallback))
    r = await private_api.http.post(
        f"{PATH}/test", json={"to": "ops@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    assert (r.json()["ok"], r.json()["served_by"]) == (True, "fallback")
    assert len(host.recorder.messages) == 1


async def test_test_email_to_a_closed_port_reports_the_failure(private_api: Api) -> None:
    tenant = await private_api.tenant()
    await _put(
        private_api,
        tenant,
        _config(host="127.0.0.1", port=free_port(), security="none", username=None, password=None),
    )
    r = await private_api.http.post(
        f"{PATH}/test", json={"to": "ops@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["ok"] is False and result["served_by"] == "primary"
    assert result["code"] is None and result["error"]


async def test_test_email_refused_by_the_server_reports_its_reply(
    private_api: Api, smtp_hosts: list[SmtpHost]
) -> None:
    host = SmtpHost(Recorder(rcpt_reply="550 5.1.1 no such mailbox"))
    smtp_hosts.append(host)
    tenant = await private_api.tenant()
    await _put(
        private_api,
        tenant,
        _config(host="127.0.0.1", port=host.port, security="none", username=None, password=None),
    )
    r = await private_api.http.post(
        f"{PATH}/test", json={"to": "nobody@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["ok"], result["code"]) == (False, 550)
    assert "no such mailbox" in result["reply"]
    assert host.recorder.messages == []


async def test_test_email_needs_a_valid_address(api: Api) -> None:
    tenant = await api.tenant()
    await _put(api, tenant, _config())
    for to in ("nope", "a@b.example\r\nBcc: c@d.example"):
        r = await api.http.post(f"{PATH}/test", json={"to": to}, headers=tenant.auth)
        assert r.status_code == 422
