"""Ingestion limits: verified requests spend the hook's budget, unverified ones their own
(per source address and per hook), so a flood of forgeries cannot lock the real sender out."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import ManualClock
from app.main import create_app
from tests.conftest import make_settings
from tests.inbound import signing
from tests.inbound.conftest import count_events, make_hook, post
from tests.support.api import Api

ATTACKER = "203.0.113.7"
SENDER = "192.0.2.10"  # e.g. one of GitHub's hook addresses
OTHER_ATTACKER = "198.51.100.9"

LIMITS = {
    "RATE_LIMIT_INBOUND_PER_MINUTE": 3,
    "RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE": 6,
    "RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE_PER_ADDRESS": 4,
}


@asynccontextmanager
async def _clients(app: FastAPI, *addresses: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One app (lifespan running), one client per source address (the socket peer)."""
    async with app.router.lifespan_context(app):
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                base_url="http://testserver",
            )
            for address in addresses
        ]
        try:
            yield clients
        finally:
            for c in clients:
                await c.aclose()


@pytest.fixture(params=["memory", "redis"])
def limited_settings(request: pytest.FixtureRequest) -> Any:
    """Tight inbound limits: counted in memory on SQLite, in Redis on PostgreSQL."""
    if request.param == "memory":
        return make_settings(request.getfixturevalue("sqlite_url"), **LIMITS)
    prefix = request.getfixturevalue("redis_prefix")
    return make_settings(
        request.getfixturevalue("pg_url"),
        REDIS_URL=request.getfixturevalue("redis_server_url"),
        # Per test: the address counters are global, and these tests share addresses.
        REDIS_KEY_PREFIX=f"{prefix}inbound-limits:{secrets.token_hex(4)}:",
        **LIMITS,
    )


def _unsigned(n: int) -> tuple[bytes, dict[str, str]]:
    body = signing.dumps({"forged": n})
    return body, {"X-Hub-Signature-256": "sha256=" + "00" * 32, "X-GitHub-Delivery": f"f{n}"}


def _signed(secret: str, n: int) -> tuple[bytes, dict[str, str]]:
    body = signing.dumps(signing.github_issue(4000 + n, f"Real {n}"))
    return body, signing.github(secret, body)


async def test_unsigned_flood_does_not_lock_out_the_signed_sender(
    limited_settings: Any, clock: ManualClock
) -> None:
    app = create_app(limited_settings, run_embedded_worker=False)
    async with _clients(app, ATTACKER, SENDER, OTHER_ATTACKER) as (attacker, sender, other):
        api = Api(sender, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, name="gh", scheme="github")
        url = hook["url"]

        # The flood: its address's budget (4) is spent, then it gets 429 with Retry-After.
        flood = [await post(Api(attacker), url, *_unsigned(n)) for n in range(6)]
        assert [r.status_code for r in flood] == [401] * 4 + [429] * 2
        assert flood[-1].headers["content-type"] == "application/problem+json"
        assert int(flood[-1].headers["retry-after"]) >= 1
        assert "per minute per source address" in flood[-1].json()["detail"]
        # Another address: the hook's unverified budget (6) is spent by now as well.
        assert (await post(Api(other), url, *_unsigned(99))).status_code == 429

        # The real sender still has its whole budget (3) ...
        answers = [await post(api, url, *_signed(hook["secret"], n)) for n in range(2)]
        # ... even from the flood's own address (one proxy in front of both, say).
        answers.append(await post(Api(attacker), url, *_signed(hook["secret"], 2)))
        assert [r.status_code for r in answers] == [202] * 3, [r.text for r in answers]
        assert answers[0].headers["ratelimit-limit"] == "3"
        # The verified budget still holds: the fourth signed request is over it.
        over = await post(api, url, *_signed(hook["secret"], 3))
        assert over.status_code == 429
        assert "inbound events per minute for this hook" in over.json()["detail"]
        assert await count_events(api, hook["id"]) == 3

        # The next window: both budgets are fresh.
        clock.advance(60)
        assert (await post(Api(attacker), url, *_unsigned(100))).status_code == 401
        assert (await post(api, url, *_signed(hook["secret"], 4))).status_code == 202
        assert await count_events(api, hook["id"]) == 4


async def test_a_signed_flood_still_spends_only_its_own_budget(
    limited_settings: Any, clock: ManualClock
) -> None:
    app = create_app(limited_settings, run_embedded_worker=False)
    async with _clients(app, SENDER, ATTACKER) as (sender, attacker):
        api = Api(sender, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, name="gh", scheme="github")
        signed = [await post(api, hook["url"], *_signed(hook["secret"], n)) for n in range(5)]
        assert [r.status_code for r in signed] == [202] * 3 + [429] * 2
        assert await count_events(api, hook["id"]) == 3
        # Forgeries are answered by their own budget, still 401 rather than the hook's 429.
        assert (await post(Api(attacker), hook["url"], *_unsigned(1))).status_code == 401


async def test_unknown_urls_spend_the_address_budget(
    limited_settings: Any, clock: ManualClock
) -> None:
    app = create_app(limited_settings, run_embedded_worker=False)
    async with _clients(app, ATTACKER, SENDER) as (attacker, sender):
        api = Api(sender, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, name="gh", scheme="github")
        probes = [
            await post(Api(attacker), f"/api/v1/webhooks/{tenant.slug}/guess-{n}", *_unsigned(n))
            for n in range(5)
        ]
        assert [r.status_code for r in probes] == [404] * 4 + [429]
        # Unknown URLs are counted per address only: the hook's sender is untouched.
        assert (await post(api, hook["url"], *_signed(hook["secret"], 0))).status_code == 202
