"""Per-provider figures: /analytics/summary's `providers` and the
`chatapi_provider_attempts_total` metric move with real deliveries through a provider chain
whose first provider fails over (the embedded relay, on both databases)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from app.core.clock import utcnow
from tests.channels.test_email import SmtpHost
from tests.notifications.relay import Relay, running_relay
from tests.observability.test_metrics import samples
from tests.providers.test_email_failover_e2e import _mail, _provider, _route, _start
from tests.support.processes import free_port

METRIC = "chatapi_provider_attempts_total"


@pytest.fixture
async def relay(db_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(db_url):
        yield r


@pytest.fixture
def hosts() -> Iterator[list[SmtpHost]]:
    started: list[SmtpHost] = []
    yield started
    for host in started:
        host.stop()


def _tries(text: str, outcome: str) -> float:
    labels = (("channel", "email"), ("outcome", outcome), ("provider_type", "smtp"))
    return samples(text).get((METRIC, labels), 0.0)


async def test_figures_name_the_provider_that_answered_and_count_the_fail_over(
    relay: Relay, hosts: list[SmtpHost]
) -> None:
    tenant = await relay.api.tenant()
    other = await relay.api.tenant()
    second = _start(hosts)
    await _provider(relay, tenant, "first", free_port())  # refused: fails over
    await _provider(relay, tenant, "second", second.port)
    await _route(relay, tenant, {"providers": ["first", "second"]})
    before = (await relay.api.http.get("/metrics")).text

    for address in ("a@example.com", "b@example.com"):
        done = await _mail(relay, tenant, address)
        assert done["status"] == "delivered", done

    after = (await relay.api.http.get("/metrics")).text
    assert _tries(after, "delivered") - _tries(before, "delivered") == 2
    assert _tries(after, "failed_over") - _tries(before, "failed_over") == 2
    window = {
        "since": (utcnow() - timedelta(hours=1)).isoformat(),
        "until": (utcnow() + timedelta(hours=1)).isoformat(),
    }
    r = await relay.api.http.get("/api/v1/analytics/summary", params=window, headers=tenant.auth)
    assert r.status_code == 200, r.text
    assert r.json()["providers"] == {
        "second": {
            "channel": "email",
            "attempts": 2,
            "by_outcome": {"delivered": 2},
            "delivery_rate": 1.0,
            "events": {},
        }
    }
    # Another tenant's summary has none of it.
    r = await relay.api.http.get("/api/v1/analytics/summary", params=window, headers=other.auth)
    assert r.status_code == 200 and r.json()["providers"] == {}
