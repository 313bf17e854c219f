"""A `sendgrid` provider through `/providers` on both databases: its settings validated
(422 problem+json naming the field, the value never echoed), `base_url` held to the webhook
address policy, the API key sealed and never answered (a PATCH that leaves it out keeps
it), and `/providers/{id}/test` against the fake SendGrid: 200, or 502 with SendGrid's
reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.api import Api
from tests.support.fake_sendgrid import FakeSendGrid, running_sendgrid

PATH = "/api/v1/providers"
PUBLIC = "https://93.184.215.14"  # a public literal: passes the address policy without DNS
API_KEY = "SG.abcdefgh.5ecret-Sg9"


def body(**settings: Any) -> dict[str, Any]:
    return {
        "name": "sendgrid",
        "type": "sendgrid",
        "settings": {
            "api_key": API_KEY,
            "from_email": "news@shop.example",
            "base_url": PUBLIC,
            **settings,
        },
    }


@pytest.fixture
async def private_api(db_url: str) -> AsyncIterator[Api]:
    """A deployment with WEBHOOK_ALLOW_PRIVATE_TARGETS=true (the fake is on 127.0.0.1)."""
    app = create_app(
        make_settings(db_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True), run_embedded_worker=False
    )
    async for http in app_client(app):
        yield Api(http, app=app)


@pytest.fixture
async def sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with running_sendgrid() as fake:
        yield fake


async def test_the_key_is_sealed_never_answered_and_kept_by_a_patch(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json=body(), headers=tenant.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret_fields"] == ["api_key"] and API_KEY not in r.text
    assert created["settings"] == {
        "from_email": "news@shop.example",
        "from_name": None,
        "base_url": PUBLIC,
        "webhook_public_key": None,
    }
    patched = await api.http.patch(
        f"{PATH}/{created['id']}", json={"settings": {"from_name": "Shop"}}, headers=tenant.auth
    )
    assert patched.status_code == 200 and patched.json()["secret_fields"] == ["api_key"]
    listed = await api.http.get(PATH, headers=tenant.auth)
    assert (
        API_KEY not in listed.text and listed.json()["data"][0]["settings"]["from_name"] == "Shop"
    )


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"webhook_public_key": "c2VjcmV0LWJ1dC1ub3QtYS1rZXk="}, "webhook_public_key"),
        ({"api_key": "SG.with a space"}, "api_key"),
        ({"from_email": "not-an-address"}, "from_email"),
        ({"base_url": "ftp://93.184.215.14"}, "base_url"),
    ],
)
async def test_invalid_settings_are_422_naming_the_field(
    api: Api, settings: dict[str, Any], field: str
) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json=body(**settings), headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "settings", field]]
    assert str(next(iter(settings.values()))) not in r.text


async def test_a_private_base_url_is_refused_by_default(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json=body(base_url="http://127.0.0.1:9"), headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert "WEBHOOK_ALLOW_PRIVATE_TARGETS" in r.json()["detail"]
    assert r.json()["errors"][0]["loc"] == ["body", "settings", "base_url"]


async def test_the_test_checks_the_key_or_says_sendgrids_reason(
    private_api: Api, sendgrid: FakeSendGrid
) -> None:
    api = private_api
    tenant = await api.tenant()
    good = body(api_key=sendgrid.api_key, base_url=sendgrid.base_url)
    r = await api.http.post(PATH, json=good, headers=tenant.auth)
    assert r.status_code == 201, r.text
    provider_id = r.json()["id"]
    r = await api.http.post(f"{PATH}/{provider_id}/test", json={}, headers=tenant.auth)
    assert (r.status_code, r.json()["ok"]) == (200, True), r.text
    r = await api.http.post(
        f"{PATH}/{provider_id}/test", json={"to": "ops@example.com"}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    [call] = sendgrid.calls
    assert call.recipients == ["ops@example.com"] and call.message_id in r.json()["detail"]

    r = await api.http.patch(
        f"{PATH}/{provider_id}",
        json={"settings": {"api_key": "SG.revoked.key"}},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    r = await api.http.post(f"{PATH}/{provider_id}/test", json={}, headers=tenant.auth)
    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "HTTP 401" in r.json()["detail"] and "SG.revoked.key" not in r.text
