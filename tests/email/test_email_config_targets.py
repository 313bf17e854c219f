"""`/email-config` is no port scanner (issue 20, point 3), on both databases: the SMTP address
policy at `PUT` (422 saying why, naming SMTP_ALLOW_PRIVATE_TARGETS) and again when
`POST /email-config/test` connects, and a peer that is not SMTP reported without its bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.core.clock import utcnow
from app.email import repository
from app.main import create_app
from tests.channels.banner import BANNERS, MARKER, BannerServer, banner_server
from tests.conftest import app_client, make_settings
from tests.email.test_email_config_api import FALLBACK, PATH, _config, _runtime
from tests.support.api import Api


async def _api(db_url: str, **settings: Any) -> AsyncIterator[Api]:
    app = create_app(make_settings(db_url, **settings), run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


@pytest.fixture
async def private_api(db_url: str) -> AsyncIterator[Api]:
    async for api in _api(db_url, SMTP_ALLOW_PRIVATE_TARGETS=True):
        yield api


@pytest.fixture
async def listed_api(db_url: str) -> AsyncIterator[Api]:
    """Private targets allowed, but only the two hosts of SMTP_ALLOWED_HOSTS."""
    async for api in _api(
        db_url, SMTP_ALLOW_PRIVATE_TARGETS=True, SMTP_ALLOWED_HOSTS="127.0.0.1,*.relay.example"
    ):
        yield api


@pytest.fixture
def nats() -> Iterator[BannerServer]:
    with banner_server(BANNERS["nats"]) as server:
        yield server


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("192.168.1.10", "private"),
        ("169.254.169.254", "metadata"),
        ("fd20:ce::254", "metadata"),
        ("169.254.169.253", "metadata"),
        ("fe80::a9fe:a9fe", "link-local"),
        ("nothing-here.invalid", "resolve"),
        ("a" * 100, "resolve"),  # passes the schema (labels run together), not the resolver
    ],
)
async def test_a_private_or_special_host_is_refused_at_put_saying_why(
    api: Api, host: str, reason: str
) -> None:
    tenant = await api.tenant()
    r = await api.http.put(PATH, json=_config(host=host), headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    detail = r.json()["detail"]
    assert reason in detail and "SMTP_ALLOW_PRIVATE_TARGETS" in detail, detail
    assert (await api.http.get(PATH, headers=tenant.auth)).status_code == 404


async def test_a_refused_host_name_does_not_reveal_its_address(api: Api) -> None:
    # The tenant learns the category, never what an internal name resolves to.
    tenant = await api.tenant()
    r = await api.http.put(PATH, json=_config(host="localhost"), headers=tenant.auth)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "localhost is loopback" in detail, detail
    assert "127.0.0.1" not in detail and "::1" not in detail, detail


async def test_a_private_fallback_is_refused_at_put_naming_the_fallback(api: Api) -> None:
    tenant = await api.tenant()
    body = _config(fallback={**FALLBACK, "host": "192.168.0.25"})
    r = await api.http.put(PATH, json=body, headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert "fallback" in r.json()["detail"] and "private" in r.json()["detail"]
    assert (await api.http.get(PATH, headers=tenant.auth)).status_code == 404


async def test_private_hosts_are_accepted_when_allowed_but_never_link_local_or_metadata(
    private_api: Api,
) -> None:
    tenant = await private_api.tenant()
    for host in ("127.0.0.1", "localhost", "10.0.0.5"):
        r = await private_api.http.put(PATH, json=_config(host=host), headers=tenant.auth)
        assert r.status_code == 200, r.text
    for host in ("169.254.169.254", "169.254.169.253", "fe80::a9fe:a9fe", "fd20:ce::254"):
        r = await private_api.http.put(PATH, json=_config(host=host), headers=tenant.auth)
        assert r.status_code == 422, (host, r.text)
        assert "SMTP_ALLOW_PRIVATE_TARGETS" in r.json()["detail"]


async def test_only_allow_listed_hosts_are_accepted(listed_api: Api) -> None:
    tenant = await listed_api.tenant()
    ok = await listed_api.http.put(PATH, json=_config(host="127.0.0.1"), headers=tenant.auth)
    refused = await listed_api.http.put(PATH, json=_config(host="127.0.0.2"), headers=tenant.auth)
    assert ok.status_code == 200, ok.text
    assert refused.status_code == 422, refused.text
    assert "SMTP_ALLOWED_HOSTS" in refused.json()["detail"]


async def test_the_test_message_to_a_non_smtp_peer_names_it_without_its_bytes(
    private_api: Api, nats: BannerServer
) -> None:
    tenant = await private_api.tenant()
    body = _config(host="127.0.0.1", port=nats.port, security="none", username=None)
    r = await private_api.http.put(PATH, json={**body, "password": None}, headers=tenant.auth)
    assert r.status_code == 200, r.text
    r = await private_api.http.post(
        f"{PATH}/test", json={"to": "ops@shop.example"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert nats.connections == 1
    assert (result["ok"], result["code"], result["reply"]) == (False, None, None)
    assert "not an SMTP server" in result["error"]
    assert MARKER not in r.text and "INFO" not in r.text


async def test_the_test_message_checks_the_stored_host_again_before_connecting(
    api: Api, nats: BannerServer
) -> None:
    # A configuration stored before the policy (or when the operator allowed private targets)
    # is checked again when it is used: nothing connects to the loopback listener.
    tenant = await api.tenant()
    async with _runtime(api).db.session() as session:
        await repository.upsert(
            session,
            tenant.id,
            host="127.0.0.1",
            port=nats.port,
            username=None,
            password_sealed=None,
            security="none",
            from_email="relay@shop.example",
            from_name=None,
            fallback=None,
            now=utcnow(),
        )
        await session.commit()
    r = await api.http.post(f"{PATH}/test", json={"to": "ops@shop.example"}, headers=tenant.auth)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["ok"] is False and "loopback" in result["error"]
    assert "SMTP_ALLOW_PRIVATE_TARGETS" in result["error"]
    assert nats.connections == 0
