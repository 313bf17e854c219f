"""A connect token is consumed once, also under concurrent redemptions (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest

from app.auth.authenticator import Authenticator
from app.core.clock import ManualClock
from app.core.errors import Unauthorized
from tests.support.api import Api, bearer


async def test_concurrent_redemptions_open_exactly_one(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    r = await api.http.post(
        "/api/v1/auth/connect-token", json={"user_id": user["id"]}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert api.app is not None
    authenticator: Authenticator = api.app.state.authenticator
    results = await asyncio.gather(
        *(authenticator.redeem_connect_token(token) for _ in range(5)), return_exceptions=True
    )
    opened = [x for x in results if not isinstance(x, BaseException)]
    assert len(opened) == 1, results
    assert opened[0].user_id == user["id"] and opened[0].client_id == tenant.id
    assert all(isinstance(x, Unauthorized) for x in results if x not in opened)


async def test_an_expired_token_is_not_consumed(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    r = await api.http.post("/api/v1/auth/connect-token", headers=bearer(key))
    assert r.status_code == 200, r.text
    assert api.app is not None
    authenticator: Authenticator = api.app.state.authenticator
    clock.advance(api.app.state.settings.CONNECT_TOKEN_TTL_SECONDS + 1)
    with pytest.raises(Unauthorized, match="expired"):
        await authenticator.redeem_connect_token(r.json()["token"])
