"""Redis, the limits' shared storage, goes down: rate limits fail open (requests go on
uncounted), `/health/ready` and a metric say so, and a wrong secret is still a 401 — never a
500 — with the wrong-secret limit counted in the process meanwhile. On a throwaway Redis of
the test's own (the suite's shared one is never stopped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from app.auth.secrets import parse_key
from app.main import create_app
from scripts.throwaway import Server, start_redis
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant, bearer

FAIL_OPEN = "chatapi_rate_limit_fail_open_total"


@dataclass
class Scene:
    api: Api
    redis: Server


@pytest.fixture
async def scene(pg_url: str, tmp_path: Path) -> AsyncIterator[Scene]:
    """The API on PostgreSQL and a Redis of this test's own (stopped by the test)."""
    redis = await asyncio.to_thread(start_redis, tmp_path / "redis")
    try:
        app = create_app(make_settings(pg_url, REDIS_URL=redis.url), run_embedded_worker=False)
        async for http in app_client(app):
            yield Scene(Api(http, app=app), redis)
    finally:
        await asyncio.to_thread(redis.stop)


def _wrong_secret(key: str) -> str:
    parts = parse_key(key)
    assert parts is not None
    wrong = "x" * len(parts.secret)
    assert wrong != parts.secret
    return f"ck_{parts.key_id}_{wrong}"


def _fail_opens(limit: str) -> float:
    return REGISTRY.get_sample_value(FAIL_OPEN, {"limit": limit}) or 0.0


async def _me(api: Api, key: str) -> httpx.Response:
    return await api.http.get("/api/v1/clients/me", headers=bearer(key))


async def test_with_redis_down_a_wrong_secret_of_an_uncached_key_is_a_401(scene: Scene) -> None:
    api = scene.api
    tenant: Tenant = await api.tenant()  # its master key is not yet verified in this process
    await asyncio.to_thread(scene.redis.stop)
    refused = await _me(api, _wrong_secret(tenant.master_key))
    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    # The right secret still works: limits fail open, no RateLimit-* headers meanwhile.
    served = await _me(api, tenant.master_key)
    assert served.status_code == 200, served.text
    assert "ratelimit-limit" not in served.headers


async def test_with_redis_down_wrong_secrets_are_still_limited_in_the_process(
    scene: Scene,
) -> None:
    api = scene.api
    tenant = await api.tenant()
    await asyncio.to_thread(scene.redis.stop)
    wrong = _wrong_secret(tenant.master_key)
    before = _fail_opens("wrong_secret")
    statuses = [(await _me(api, wrong)).status_code for _ in range(11)]
    # Ten verifies a minute per key id, as with Redis: bcrypt stays bounded.
    assert statuses == [401] * 10 + [429], statuses
    # Each of them missed the shared count (and was counted in the process instead).
    assert _fail_opens("wrong_secret") - before == 11


async def test_with_redis_down_ready_and_a_metric_say_rate_limits_fail_open(scene: Scene) -> None:
    api = scene.api
    tenant = await api.tenant()
    up = await api.http.get("/health/ready")
    assert up.status_code == 200, up.text
    assert up.json()["rate_limits"] == "enforced"
    assert (await _me(api, tenant.master_key)).status_code == 200  # verified, cached
    await asyncio.to_thread(scene.redis.stop)
    before = _fail_opens("requests")
    for _ in range(3):
        served = await _me(api, tenant.master_key)
        assert served.status_code == 200 and "ratelimit-limit" not in served.headers
    assert _fail_opens("requests") - before == 3
    down = await api.http.get("/health/ready")
    assert down.status_code == 503  # Redis is a readiness check, as before
    assert down.json()["checks"]["redis"].startswith("failed")
    assert down.json()["rate_limits"] == "fail-open: redis unavailable"
    metrics = await api.http.get("/metrics")
    assert f'{FAIL_OPEN}{{limit="requests"}}' in metrics.text


async def test_rate_limits_count_again_once_redis_is_back(scene: Scene) -> None:
    api = scene.api
    tenant = await api.tenant()
    assert (await _me(api, tenant.master_key)).status_code == 200
    await asyncio.to_thread(scene.redis.stop)
    assert "ratelimit-limit" not in (await _me(api, tenant.master_key)).headers
    await asyncio.to_thread(scene.redis.start_again)
    deadline = asyncio.get_running_loop().time() + 20
    while "ratelimit-limit" not in (served := await _me(api, tenant.master_key)).headers:
        assert asyncio.get_running_loop().time() < deadline, "limits did not come back"
        await asyncio.sleep(0.2)
    assert served.status_code == 200
    while (ready := await api.http.get("/health/ready")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "ready did not come back"
        await asyncio.sleep(0.2)
    assert ready.json()["rate_limits"] == "enforced"
