"""An inbound hook's `url` is absolute (issue 23, point 7): what a user pastes into GitHub,
Stripe or a helpdesk as is. PUBLIC_BASE_URL names the public origin (behind a proxy or a
path prefix); unset, the request's own base URL is used. `path` keeps the relative form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core.clock import ManualClock
from app.core.config import ConfigError, load_settings
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.inbound import signing
from tests.inbound.conftest import make_hook
from tests.support.api import Api, Tenant

HOOKS = "/api/v1/inbound-webhooks"


async def _every_answer(api: Api, tenant: Tenant, hook: dict[str, Any]) -> list[dict[str, Any]]:
    """The hook as each endpoint that shows one answers it."""
    answers = [hook]
    auth = tenant.auth
    for r in (
        await api.http.get(f"{HOOKS}/{hook['id']}", headers=auth),
        await api.http.patch(f"{HOOKS}/{hook['id']}", json={"disabled": False}, headers=auth),
        await api.http.post(f"{HOOKS}/{hook['id']}/rotate-secret", headers=auth),
    ):
        assert r.status_code == 200, r.text
        answers.append(r.json())
    listed = await api.http.get(HOOKS, headers=auth)
    assert listed.status_code == 200, listed.text
    answers.extend(listed.json()["data"])
    return answers


async def test_without_public_base_url_the_url_is_absolute_on_the_request_base(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, name="helpdesk")
    path = f"/api/v1/webhooks/{tenant.slug}/helpdesk"
    for answer in await _every_answer(api, tenant, hook):
        assert answer["url"] == f"http://testserver{path}", answer
        assert answer["path"] == path
    # The URL as given takes a signed event (the client's base URL is the same origin).
    rotated = (
        await api.http.post(f"{HOOKS}/{hook['id']}/rotate-secret", headers=tenant.auth)
    ).json()
    body = signing.dumps({"id": "evt_1"})
    headers = signing.standard_webhooks(rotated["secret"], body, clock.now())
    r = await api.http.post(rotated["url"], content=body, headers=headers)
    assert r.status_code == 202, r.text


@pytest.fixture
async def public_api(db_url: str) -> AsyncIterator[Api]:
    settings = make_settings(db_url, PUBLIC_BASE_URL="https://chat.example.com/relay/")
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


async def test_public_base_url_is_the_origin_of_every_hook_url(public_api: Api) -> None:
    tenant = await public_api.tenant()
    hook = await make_hook(public_api, tenant, name="stripe", scheme="stripe")
    path = f"/api/v1/webhooks/{tenant.slug}/stripe"
    for answer in await _every_answer(public_api, tenant, hook):
        # Its path prefix kept, its trailing slash not doubled.
        assert answer["url"] == f"https://chat.example.com/relay{path}", answer
        assert answer["path"] == path


@pytest.mark.parametrize(
    "value",
    [
        "chat.example.com",  # no scheme
        "ftp://chat.example.com",
        "https://",  # no host
        "https://chat.example.com/?x=1",
        "https://chat.example.com/#top",
        "https://user:pw@chat.example.com",
    ],
)
def test_a_public_base_url_that_is_no_origin_is_a_config_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert any(line.startswith("PUBLIC_BASE_URL:") for line in refused.value.problems), (
        refused.value.problems
    )
